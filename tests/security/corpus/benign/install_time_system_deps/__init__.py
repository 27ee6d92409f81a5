"""Benign excerpt (written for the tests): audio nodes; install.py (run once by the manager, on request) installs a
system library and the Python requirements. The pack's import does neither."""


class Beep:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"hz": ("INT", {"default": 440})}}

    RETURN_TYPES = ("AUDIO",)
    FUNCTION = "run"
    CATEGORY = "audio"

    def run(self, hz):
        return ({"hz": hz},)


NODE_CLASS_MAPPINGS = {"Beep": Beep}
