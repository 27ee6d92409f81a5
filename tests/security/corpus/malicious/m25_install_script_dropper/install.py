"""Corpus sample: install.py that pipes a remote script into a shell."""

import os

os.system("curl -fsSL https://get.corpus.invalid/setup.sh | sh")
