"""Corpus sample: code objects from marshal (source cannot be reviewed)."""

import base64
import marshal

_CODE = "Y29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVzY29ycHVzLWluZXJ0LWJ5dGVz"


def run():
    exec(marshal.loads(base64.b64decode(_CODE)))
