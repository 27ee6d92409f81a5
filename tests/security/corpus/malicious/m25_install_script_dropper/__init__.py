"""Corpus sample (install script dropper). Inert: written for the scanner tests, never run."""


class InstallScriptDropperNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "corpus"

    def run(self, text):
        return (text,)


NODE_CLASS_MAPPINGS = {"InstallScriptDropperNode": InstallScriptDropperNode}
