"""Indicator lists and the two checks that use them."""

import re

MINER_WORDS = re.compile(r"\b(xmrig|ethminer|nbminer|t-rex|gminer|nanopool|supportxmr|f2pool|2miners)\b", re.I)
MINER_OPTIONS = ("--donate-level", "--cpu-max-threads-hint", "--randomx-mode")
PACKER_MARKERS = ("__pyarmor__", "pyarmor_runtime", "__pyarmor_enter", "Obfuscated by", "pyobfuscate")


def mentions_miner(text):
    return bool(MINER_WORDS.search(text)) or any(option in text for option in MINER_OPTIONS)


def looks_packed(source):
    return any(marker in source for marker in PACKER_MARKERS)
