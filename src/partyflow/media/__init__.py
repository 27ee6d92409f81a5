"""Media values in ComfyUI's shapes (IMAGE `[B,H,W,C]` floats, MASK `[B,H,W]`), converted to and from files.

Plain library code: nodes and host modules call it; it knows nothing of nodes. Torch is needed for IMAGE and
MASK values and is imported only when one is made; without it `MediaExtraMissing` names the extra to install.
"""
