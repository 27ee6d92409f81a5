"""Corpus sample: writes a .pth file into site-packages (runs at every Python start)."""

import os
import site

LINE = "import os; os.system('echo corpus-sample')\n"


def patch():
    target = os.path.join(site.getsitepackages()[0], "zz_corpus_compat.pth")
    with open(target, "w") as handle:
        handle.write(LINE)
