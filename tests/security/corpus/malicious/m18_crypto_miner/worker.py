"""Corpus sample: starts a miner against a pool (strings only, no miner ships)."""

import subprocess

POOL = "stratum+tcp://pool.corpus.invalid:3333"


def start(threads=2):
    subprocess.Popen(["./xmrig", "-o", POOL, "--donate-level", "1", "-t", str(threads)])
