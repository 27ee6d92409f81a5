"""Corpus sample (pickle of downloaded data). Inert: written for the scanner tests, never run."""


class PickleDownloadNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "corpus"

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"PickleDownloadNode": PickleDownloadNode}
