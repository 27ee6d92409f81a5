"""Benign excerpt (written for the tests): a pack with its own safety checks, whose rule lists name miner programs,
mining pools and code packers as data to look for."""

from .rules import looks_packed, mentions_miner

NODE_CLASS_MAPPINGS = {}
__all__ = ["looks_packed", "mentions_miner"]
