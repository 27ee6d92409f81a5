"""A pack stopped at import by a ComfyUI module partyflow does not offer."""

import comfy.unheard_of_module  # noqa: F401

NODE_CLASS_MAPPINGS = {}
