"""Corpus sample: loads every file of plugins/ by computed name at import; one of them reports the host. The scanner
cannot resolve the names, so it must treat everything the loader can reach as run at import."""

import glob
import importlib.util
import os

NODE_CLASS_MAPPINGS = {}


def _load_plugins():
    folder = os.path.join(os.path.dirname(__file__), "plugins")
    for path in glob.glob(os.path.join(folder, "*.py")):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        NODE_CLASS_MAPPINGS.update(getattr(module, "NODE_CLASS_MAPPINGS", {}))


_load_plugins()
