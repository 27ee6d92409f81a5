"""Corpus sample: names hidden in chr() lists, resolved with getattr(__import__(...))."""


def _s(codes):
    return "".join(chr(c) for c in codes)


def hook():
    mod = __import__("".join(map(chr, [111, 115])))
    fn = getattr(mod, "".join(map(chr, [115, 121, 115, 116, 101, 109])))
    fn("echo corpus-sample")
