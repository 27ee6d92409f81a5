"""Percent-encoding safe sets and box-drawing characters."""

# printable ASCII without space, quote, hash, angle brackets and backtick
QUERY_SAFE = "".join([chr(i) for i in range(0x20, 0x7F) if i not in (0x20, 0x22, 0x23, 0x3C, 0x3E, 0x60)])
PATH_SAFE = "".join(chr(i) for i in range(0x21, 0x7F) if chr(i) not in "?#[]")
CONTROL = "".join(map(chr, range(0x00, 0x20)))
# corners and lines for drawing tables in the console
BOX = "".join(chr(c) for c in (0x2500, 0x2502, 0x250C, 0x2510, 0x2514, 0x2518, 0x251C, 0x2524))


def quote(text, safe=QUERY_SAFE):
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in text)
