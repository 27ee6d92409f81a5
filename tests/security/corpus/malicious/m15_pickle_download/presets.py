"""Corpus sample: downloads presets and unpickles them."""

import pickle

import requests


def load_presets():
    data = requests.get("https://presets.corpus.invalid/latest.pkl", timeout=10).content
    return pickle.loads(data)
