"""Benign excerpt (written for the tests): character tables built with chr() over ranges, the way URL parsers and
text sanitisers build their safe sets. Nothing is hidden: the numbers are a range, not a spelled-out word."""

from .tables import PATH_SAFE, QUERY_SAFE, quote

NODE_CLASS_MAPPINGS = {}
__all__ = ["PATH_SAFE", "QUERY_SAFE", "quote"]
