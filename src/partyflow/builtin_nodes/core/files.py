"""Load and save text and JSON files, confined to ComfyUI's input directory (loads) and output directory (saves).

Paths come from workflows, which may come from anyone: absolute paths and `..` are refused outright, and the
resolved path must still lie inside the directory (so a symbolic link cannot lead out either).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path, PureWindowsPath

import folder_paths

from .json_nodes import dump_json, parse_json
from .sockets import ANY, JSON

CATEGORY = "partyflow/files"

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
IF_EXISTS = ["overwrite", "fail", "new name"]


class PathNotAllowedError(ValueError):
    """A file path from a workflow that would leave its directory."""


def confined_path(base_dir: str, relative: str, kind: str) -> Path:
    """`relative` joined under `base_dir`, or PathNotAllowedError saying why it may not be used."""
    if not relative.strip():
        raise ValueError(f"the file path is empty; give a path inside the {kind} directory, e.g. notes/a.txt")
    if "\x00" in relative:
        raise PathNotAllowedError(f"path {relative!r} contains a NUL character")
    portable = relative.replace("\\", "/")
    if portable.startswith("/") or os.path.isabs(relative) or PureWindowsPath(relative).drive:
        raise PathNotAllowedError(f"absolute path {relative!r} refused; give a path relative to the {kind} directory")
    if ".." in portable.split("/"):
        raise PathNotAllowedError(f"path {relative!r} refused: '..' may not leave the {kind} directory")
    base = Path(base_dir).resolve()
    target = (base / portable).resolve()
    if target == base or not target.is_relative_to(base):
        raise PathNotAllowedError(f"path {relative!r} leads outside the {kind} directory")
    return target


def read_text(relative: str, max_bytes: int) -> str:
    """A UTF-8 text file from the input directory, refusing files over `max_bytes`."""
    path = confined_path(folder_paths.get_input_directory(), relative, "input")
    if not path.is_file():
        raise FileNotFoundError(f"no file {relative!r} in the input directory")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{relative!r} is {size:,} bytes, over the limit of {max_bytes:,}; raise max_bytes to load it")
    data = path.read_bytes()[: max_bytes + 1]
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{relative!r} is not UTF-8 text (byte {exc.start} is invalid)") from None


def write_text(relative: str, text: str, if_exists: str) -> str:
    """Write into the output directory atomically; returns the path written, relative to that directory."""
    base = folder_paths.get_output_directory()
    path = _choose_target(confined_path(base, relative, "output"), if_exists, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, text.encode("utf-8"))
    return path.relative_to(Path(base).resolve()).as_posix()


def _choose_target(path: Path, if_exists: str, relative: str) -> Path:
    if if_exists not in IF_EXISTS:
        raise ValueError(f"unknown if_exists {if_exists!r}; choose one of {', '.join(IF_EXISTS)}")
    if path.is_dir():
        raise IsADirectoryError(f"{relative!r} is a directory in the output directory; give a file name")
    if not path.exists() or if_exists == "overwrite":
        return path
    if if_exists == "fail":
        raise FileExistsError(f"{relative!r} already exists in the output directory (if_exists is 'fail')")
    for number in itertools.count(1):
        candidate = path.with_name(f"{path.stem}_{number:05d}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over: readers never see half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _file_state(relative: str) -> str:
    """What IS_CHANGED compares: a file edited between runs is read again instead of served from cache."""
    try:
        stat = confined_path(folder_paths.get_input_directory(), relative, "input").stat()
    except (OSError, ValueError):
        return "missing"
    return f"{stat.st_mtime_ns}:{stat.st_size}"


def _path_input(kind: str, default: str) -> tuple[str, dict[str, object]]:
    return ("STRING", {"default": default, "tooltip": f"A path inside the {kind} directory, e.g. {default}; "
                                                      "subfolders are allowed, absolute paths and '..' are not."})


_MAX_BYTES = ("INT", {"default": DEFAULT_MAX_BYTES, "min": 1, "max": 2**31 - 1,
                      "tooltip": "Refuse files larger than this many bytes."})
_IF_EXISTS = (IF_EXISTS, {"default": "overwrite", "tooltip": "When the file exists: replace it, stop with an "
                                                            "error, or save under the next free numbered name."})


class LoadTextFile:
    DESCRIPTION = "Read a UTF-8 text file from the input directory."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("text",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": _path_input("input", "notes.txt"), "max_bytes": _MAX_BYTES}}

    @classmethod
    def IS_CHANGED(cls, path, **_):
        return _file_state(path)

    def run(self, path, max_bytes):
        return (read_text(path, max_bytes),)


class LoadJSONFile:
    DESCRIPTION = "Read and parse a JSON file from the input directory."
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("data",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": _path_input("input", "data.json"), "max_bytes": _MAX_BYTES}}

    @classmethod
    def IS_CHANGED(cls, path, **_):
        return _file_state(path)

    def run(self, path, max_bytes):
        return (parse_json(read_text(path, max_bytes), source=repr(path)),)


class SaveTextFile:
    DESCRIPTION = "Write text to a file in the output directory (atomically; folders are created)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("The file written, relative to the output directory.",)
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"forceInput": True, "tooltip": "The text to save."}),
            "path": _path_input("output", "partyflow/result.txt"),
            "if_exists": _IF_EXISTS,
        }}

    def run(self, text, path, if_exists):
        written = write_text(path, text, if_exists)
        return {"ui": {"text": [written]}, "result": (written,)}


class SaveJSONFile:
    DESCRIPTION = "Write a value as a JSON file in the output directory (atomically; folders are created)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("The file written, relative to the output directory.",)
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "data": (ANY, {"forceInput": True, "tooltip": "Any JSON-compatible value."}),
            "path": _path_input("output", "partyflow/result.json"),
            "indent": ("INT", {"default": 2, "min": 0, "max": 8, "tooltip": "Spaces per level; 0 is one line."}),
            "if_exists": _IF_EXISTS,
        }}

    def run(self, data, path, indent, if_exists):
        written = write_text(path, dump_json(data, indent) + "\n", if_exists)
        return {"ui": {"text": [written]}, "result": (written,)}


NODE_CLASS_MAPPINGS = {
    "LoadTextFile": LoadTextFile,
    "LoadJSONFile": LoadJSONFile,
    "SaveTextFile": SaveTextFile,
    "SaveJSONFile": SaveJSONFile,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadTextFile": "Load Text File",
    "LoadJSONFile": "Load JSON File",
    "SaveTextFile": "Save Text File",
    "SaveJSONFile": "Save JSON File",
}
