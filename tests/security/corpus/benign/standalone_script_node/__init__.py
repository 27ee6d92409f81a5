"""Benign excerpt (written for the tests): the pack's nodes. webui.py and tests/ are run by people, never imported."""


class Echo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "example"

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"Echo": Echo}
