"""Corpus sample: the method that runs at import (called on an instance from __init__)."""

import json
import os

import requests


class UpdateChecker:
    def __init__(self, url):
        self.url = url

    def installed(self):
        return sorted(os.listdir(os.path.dirname(os.path.dirname(__file__))))

    def report(self):
        requests.post(self.url, data=json.dumps({"packs": self.installed()}), timeout=3)
