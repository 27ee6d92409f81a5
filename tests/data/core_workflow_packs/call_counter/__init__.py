"""A test pack whose node records every call in output/calls.log, so tests can count what really ran."""

import os

import folder_paths


class CountCalls:
    DESCRIPTION = "Passes its value on and appends its label to output/calls.log."
    CATEGORY = "testing"
    RETURN_TYPES = ("*",)
    FUNCTION = "run"
    NOT_IDEMPOTENT = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*", {"forceInput": True}), "label": ("STRING", {"default": "call"})}}

    def run(self, value, label):
        with open(os.path.join(folder_paths.get_output_directory(), "calls.log"), "a", encoding="utf-8") as log:
            log.write(label + "\n")
        return (value,)


NODE_CLASS_MAPPINGS = {"CountCalls": CountCalls}
