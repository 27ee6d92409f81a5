"""ComfyUI's `folder_paths`, answered from the running engine's home.

ComfyUI keeps these directories in module globals; here every call reads `current_host()`, and the
module-level names packs read directly (`models_dir`, `folder_names_and_paths`, `output_directory`, ...)
are computed on access (PEP 562). File names that come from workflows are confined to the folder they name:
a `..` or an absolute path never reaches outside it.
"""

from __future__ import annotations

import mimetypes
import os
import re
import time
from collections.abc import Collection, Iterable
from typing import Any

from partyflow.nodes.comfy_compat._located import located_file
from partyflow.nodes.host import HostContext, current_host

supported_pt_extensions: frozenset[str] = frozenset(
    {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"})

_ANNOTATIONS = ("[output]", "[input]", "[temp]")


def _host() -> HostContext:
    return current_host()


def get_input_directory() -> str:
    return str(_host().home.input)


def get_output_directory() -> str:
    return str(_host().home.output)


def get_temp_directory() -> str:
    return str(_host().home.temp)


def get_user_directory() -> str:
    return str(_host().home.user)


def get_directory_by_type(type_name: str) -> str | None:
    """The directory of an `input` / `output` / `temp` file reference; None for anything else."""
    return _DIRECTORY_GETTERS[type_name]() if type_name in _DIRECTORY_GETTERS else None


_DIRECTORY_GETTERS = {"input": get_input_directory, "output": get_output_directory, "temp": get_temp_directory}

_MODULE_VALUES = {
    "base_path": lambda: str(_host().home.root),
    "models_dir": lambda: str(_host().home.models),
    "folder_names_and_paths": lambda: _host().folder_names_and_paths,
    "input_directory": get_input_directory,
    "output_directory": get_output_directory,
    "temp_directory": get_temp_directory,
    "user_directory": get_user_directory,
}


def __getattr__(name: str) -> Any:
    if name == "__file__":
        return located_file(_REAL_FILE, "folder_paths.py")
    if name in _MODULE_VALUES:
        return _MODULE_VALUES[name]()
    raise AttributeError(f"module 'folder_paths' has no attribute {name!r}")


def confined_join(base: str | os.PathLike[str], relative: str | os.PathLike[str]) -> str | None:
    """`base/relative` normalised, or None if `relative` would leave `base`.

    The check is on the path's text, not its resolved target: symlinks a user placed inside a models folder
    keep working, while `..` segments and absolute names from a workflow are refused.
    """
    root = os.path.abspath(base)
    joined = os.path.abspath(os.path.join(root, relative))
    return joined if os.path.commonpath((root, joined)) == root else None


# --- model folders -------------------------------------------------------------------------------------------

def get_folder_paths(folder_name: str) -> list[str]:
    return list(_host().folder_names_and_paths[folder_name][0])


def add_model_folder_path(folder_name: str, full_folder_path: str, is_default: bool = False) -> None:
    """Register another folder for `folder_name` in this engine (first when `is_default`)."""
    folders = _host().folder_names_and_paths
    if folder_name not in folders:
        folders[folder_name] = ([full_folder_path], set())
        return
    paths = folders[folder_name][0]
    if full_folder_path in paths:
        paths.remove(full_folder_path)
    if is_default:
        paths.insert(0, full_folder_path)
    else:
        paths.append(full_folder_path)


def filter_files_extensions(files: Collection[str], extensions: Collection[str]) -> list[str]:
    """The files whose extension is listed (all of them when `extensions` is empty), sorted."""
    wanted = {e.lower() for e in extensions}
    return sorted(f for f in files if not wanted or os.path.splitext(f)[1].lower() in wanted)


def filter_files_content_types(files: Iterable[str], content_types: Collection[str]) -> list[str]:
    """The files whose guessed MIME major type (`image`, `video`, `audio`, ...) is listed."""
    kept = []
    for name in files:
        mime, _ = mimetypes.guess_type(name, strict=False)
        if mime and mime.split("/")[0] in content_types:
            kept.append(name)
    return kept


def get_filename_list(folder_name: str) -> list[str]:
    """Every file under the folders registered for `folder_name`, relative and `/`-separated, sorted."""
    paths, extensions = _host().folder_names_and_paths[folder_name]
    found: set[str] = set()
    for folder in paths:
        found.update(_walk_files(folder))
    return filter_files_extensions(found, extensions)


def _walk_files(folder: str) -> Iterable[str]:
    seen: set[str] = set()
    for directory, subdirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:  # a symlink loop
            subdirs.clear()
            continue
        seen.add(real)
        subdirs[:] = [d for d in subdirs if d != ".git"]
        relative = os.path.relpath(directory, folder)
        for name in files:
            yield name if relative == "." else f"{relative}/{name}".replace(os.sep, "/")


def get_full_path(folder_name: str, filename: str) -> str | None:
    """The first existing file `filename` in the folders of `folder_name`; None if absent or escaping."""
    folders = _host().folder_names_and_paths.get(folder_name)
    if folders is None:
        return None
    for folder in folders[0]:
        candidate = confined_join(folder, filename)
        if candidate is not None and os.path.isfile(candidate):
            return candidate
    return None


def get_full_path_or_raise(folder_name: str, filename: str) -> str:
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


# --- input / output files ------------------------------------------------------------------------------------

def annotated_filepath(name: str) -> tuple[str, str | None]:
    """Split `"name.png [output]"` into the name and the directory its annotation names (None: none)."""
    for tag in _ANNOTATIONS:
        if name.endswith(tag):
            base = name[: -len(tag)]
            return base[:-1] if base.endswith(" ") else base, get_directory_by_type(tag[1:-1])
    return name, None


def get_annotated_filepath(name: str, default_dir: str | None = None) -> str:
    """The path of an annotated file name; PermissionError if it leaves its directory."""
    filename, base = annotated_filepath(name)
    directory = base or default_dir or get_input_directory()
    path = confined_join(directory, filename)
    if path is None:
        raise PermissionError(f"file name {name!r} leaves the directory {directory}")
    return path


def exists_annotated_filepath(name: str) -> bool:
    filename, base = annotated_filepath(name)
    path = confined_join(base or get_input_directory(), filename)
    return path is not None and os.path.exists(path)


def get_save_image_path(filename_prefix: str, output_dir: str, image_width: int = 0,
                        image_height: int = 0) -> tuple[str, str, int, str, str]:
    """Where to save the next file: `(folder, filename, counter, subfolder, filename_prefix)`.

    The counter follows the `<filename>_<counter>_` files already there; a prefix that would leave
    `output_dir` raises PermissionError.
    """
    if "%" in filename_prefix:
        filename_prefix = _expand_variables(filename_prefix, image_width, image_height)
    normalised = os.path.normpath(filename_prefix)
    subfolder, filename = os.path.dirname(normalised), os.path.basename(normalised)
    folder = confined_join(output_dir, subfolder)
    if folder is None or not filename or filename in (".", ".."):
        raise PermissionError(f"saving {filename_prefix!r} outside the output folder {output_dir} is not allowed")
    os.makedirs(folder, exist_ok=True)
    return folder, filename, _next_counter(folder, filename), subfolder, filename_prefix


def _expand_variables(text: str, width: int, height: int) -> str:
    now = time.localtime()
    values = {"width": width, "height": height, "year": now.tm_year, "month": f"{now.tm_mon:02}",
              "day": f"{now.tm_mday:02}", "hour": f"{now.tm_hour:02}", "minute": f"{now.tm_min:02}",
              "second": f"{now.tm_sec:02}"}
    for key, value in values.items():
        text = text.replace(f"%{key}%", str(value))
    return text


def _next_counter(folder: str, filename: str) -> int:
    pattern = re.compile(re.escape(filename) + r"_(\d+)_")
    counters = [int(m.group(1)) for entry in os.listdir(folder) if (m := pattern.match(entry))]
    return max(counters, default=0) + 1


# --- the rest of ComfyUI's public functions ---------------------------------------------------------------------

_LEGACY_NAMES = {"unet": "diffusion_models", "clip": "text_encoders"}
filename_list_cache: dict[str, Any] = {}  # ComfyUI's cache; partyflow lists afresh, so it stays empty
extension_mimetypes_cache: dict[str, str] = {"webp": "image", "fbx": "model"}


def map_legacy(folder_name: str) -> str:
    """ComfyUI's renamed folders (`unet` is now `diffusion_models`, `clip` is `text_encoders`)."""
    return _LEGACY_NAMES.get(folder_name, folder_name)


def recursive_search(directory: str, excluded_dir_names: list[str] | None = None) -> tuple[list[str], dict[str, float]]:
    """Every file under `directory` (relative, `/`-separated) and the modification time of each folder."""
    if not os.path.isdir(directory):
        return [], {}
    excluded = set(excluded_dir_names or []) | {".git"}
    files, folders = [], {directory: os.path.getmtime(directory)}
    for root, subdirs, names in os.walk(directory, followlinks=True):
        subdirs[:] = [d for d in subdirs if d not in excluded]
        for sub in subdirs:
            path = os.path.join(root, sub)
            try:
                folders[path] = os.path.getmtime(path)
            except OSError:
                continue
        relative = os.path.relpath(root, directory)
        files.extend(n if relative == "." else f"{relative}/{n}".replace(os.sep, "/") for n in names)
    return files, folders


def get_filename_list_(folder_name: str) -> tuple[list[str], dict[str, float], float]:
    """`get_filename_list` with the folder times ComfyUI caches by."""
    folder_name = map_legacy(folder_name)
    times: dict[str, float] = {}
    for folder in _host().folder_names_and_paths.get(folder_name, ([], set()))[0]:
        times.update(recursive_search(folder)[1])
    return get_filename_list(folder_name), times, time.perf_counter()


def cached_filename_list_(folder_name: str) -> None:
    """Nothing is cached here: listings are always fresh."""
    return None


def get_input_subfolders() -> list[str]:
    """The folders under input/, relative and `/`-separated."""
    root = get_input_directory()
    found = []
    for directory, subdirs, _files in os.walk(root):
        for sub in subdirs:
            found.append(os.path.relpath(os.path.join(directory, sub), root).replace(os.sep, "/"))
    return sorted(found)


def get_system_user_directory(name: str = "system") -> str:
    """A per-feature folder under user/ whose name starts with `__` (not reachable over HTTP in ComfyUI)."""
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"invalid system user directory name {name!r}")
    return os.path.join(get_user_directory(), f"__{name}")


def get_public_user_directory(user_id: str) -> str | None:
    """user/<user_id> for ordinary user ids; None for names that are not (`__system` folders, traversal)."""
    if not user_id or user_id.startswith("__") or "/" in user_id or "\\" in user_id or user_id in {".", ".."}:
        return None
    return os.path.join(get_user_directory(), user_id)


def _refuse_move(kind: str) -> Any:
    def setter(directory: str) -> None:
        import logging

        logging.getLogger(__name__).warning(
            "a pack asked to move the %s directory to %s; partyflow keeps its home's layout (use --home)", kind,
            directory)

    setter.__name__ = f"set_{kind}_directory"
    setter.__doc__ = f"Ignored with a warning: partyflow's {kind} directory is fixed by its home."
    return setter


set_output_directory = _refuse_move("output")
set_temp_directory = _refuse_move("temp")
set_input_directory = _refuse_move("input")
set_user_directory = _refuse_move("user")


_REAL_FILE = __file__
del __file__  # answered by __getattr__: a path in the engine's home (see _located)
