"""Benign excerpt (written for the tests): JSON pointers (RFC 6901) into workflow documents. `~` and `/` are
escaped with str.replace: text, not files."""


def escape(token):
    return str(token).replace("~", "~0").replace("/", "~1")


def unescape(token):
    return token.replace("~1", "/").replace("~0", "~")


def pointer(*tokens):
    return "".join("/" + escape(t) for t in tokens)


def resolve(document, text):
    for token in text.split("/")[1:]:
        token = unescape(token)
        document = document[int(token)] if isinstance(document, list) else document[token]
    return document


NODE_CLASS_MAPPINGS = {}
