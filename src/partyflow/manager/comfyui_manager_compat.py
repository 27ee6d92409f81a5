"""ComfyUI-Manager's on-disk conventions, so partyflow and ComfyUI-Manager can manage the same ComfyUI install.

What ComfyUI-Manager does (facts, in our words; docs/manager.md has the full list):
* A pack from the Comfy Registry ("CNR" pack) is a folder with a `pyproject.toml` (`[project] name` is its `cnr_id`,
  `[project] version` its version) and a `.tracking` file listing the files its archive brought. A git clone is a
  "nightly" pack; its `cnr_id`, when the registry knows it, sits in `.git/.cnr-id`, and its `aux_id` is the
  repository's `owner/name`. Anything else is "unknown".
* Disabling moves a pack to `custom_nodes/.disabled/`: a CNR pack as `<id>@<version with _ for .>` (several
  disabled versions may coexist), a nightly one as `<id>@nightly`, an unknown one under its own name. Older
  versions renamed it in place to `<name>.disabled` (and `<file>.py.disabled` for single files); both are read.
* Snapshots are JSON files in `user/default/ComfyUI-Manager/snapshots/`: `comfyui` (commit), `git_custom_nodes`
  (url -> {hash, disabled}), `cnr_custom_nodes` (id -> version, enabled packs only), `file_custom_nodes`
  ([{filename, disabled}]) and `pips` ({"name==version": ""}). partyflow writes that document with its own richer
  snapshot under an extra `partyflow` key, which ComfyUI-Manager ignores and partyflow prefers when reading.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["mark_registry_pack", "disabled_entry_name", "disabled_folder_name", "git_remote", "pack_identity", "snapshot_document"]

_GITHUB = re.compile(r"github\.com[:/]+([^/\s]+)/([^/\s]+?)(?:\.git)?/?$")


def _git(path: Path, *args: str) -> str | None:
    if not (path / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def git_remote(path: Path) -> str | None:
    """The fetch URL of the clone's remote (`origin` first), as ComfyUI-Manager records it."""
    url = _git(path, "remote", "get-url", "origin")
    if url:
        return url
    remotes = (_git(path, "remote") or "").split()
    return _git(path, "remote", "get-url", remotes[0]) if remotes else None


def _cnr_info(path: Path) -> tuple[str, str] | None:
    """(id, version) of a registry pack: pyproject.toml with name and version, and a .tracking file."""
    if not ((path / ".tracking").is_file() and (path / "pyproject.toml").is_file()):
        return None
    try:
        project = tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return None
    name, version = str(project.get("name") or "").strip().lower(), str(project.get("version") or "").strip()
    return (name, version) if name and version else None


def pack_identity(path: Path) -> dict[str, Any]:
    """How ComfyUI-Manager identifies the pack at `path`: kind (cnr, nightly, file, unknown), cnr_id, aux_id,
    version, and for clones the remote URL and commit."""
    if path.is_file():
        return {"kind": "file", "cnr_id": None, "aux_id": None, "version": None}
    remote = git_remote(path)
    if remote is None:
        cnr = _cnr_info(path)
        if cnr is not None:
            return {"kind": "cnr", "cnr_id": cnr[0], "aux_id": None, "version": cnr[1]}
        return {"kind": "unknown", "cnr_id": None, "aux_id": None, "version": None}
    cnr_id = None
    marker = path / ".git" / ".cnr-id"
    if marker.is_file():
        cnr_id = marker.read_text(encoding="utf-8", errors="replace").strip() or None
    github = _GITHUB.search(remote)
    aux_id = f"{github.group(1)}/{github.group(2)}" if github else remote.rstrip("/").rsplit("/", 1)[-1]
    return {"kind": "nightly", "cnr_id": cnr_id, "aux_id": aux_id.removesuffix(".git"), "version": "nightly",
            "url": remote, "commit": _git(path, "rev-parse", "HEAD")}


def mark_registry_pack(path: Path, source_kind: str) -> bool:
    """Write ComfyUI-Manager's `.tracking` file into a staged pack unpacked from an archive whose `pyproject.toml`
    names it (`[project] name` = the folder name, and a version), as a registry install does, so that
    ComfyUI-Manager sees a registry pack of that id and version rather than an unknown folder."""
    if source_kind not in ("url", "archive") or not path.is_dir() or (path / ".tracking").exists():
        return False
    try:
        project = tomllib.loads((path / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (FileNotFoundError, tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return False
    if str(project.get("name") or "").strip().lower() != path.name.lower() or not project.get("version"):
        return False
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    (path / ".tracking").write_text("".join(f"{name}\n" for name in files), encoding="utf-8")
    return True


def disabled_folder_name(path: Path, name: str) -> str:
    """The name a pack gets in `.disabled/`: `<id>@<version>` for registry packs, `<id>@nightly` for clones."""
    if path.is_file():
        return path.name
    identity = pack_identity(path)
    if identity["kind"] == "cnr":
        return f"{name}@{identity['version'].replace('.', '_')}"
    if identity["kind"] == "nightly":
        return f"{name}@nightly"
    return name


def disabled_entry_name(entry: Path, in_disabled_folder: bool) -> str | None:
    """The pack name of an entry in `.disabled/` (`id@version` -> id) or of an old-style `<name>.disabled` entry in
    custom_nodes (None when it is not one)."""
    base = entry.name
    if not in_disabled_folder:
        if not base.endswith(".disabled"):
            return None
        base = base.removesuffix(".disabled")
    if base.endswith(".py"):
        return base.removesuffix(".py")
    return base.split("@", 1)[0] if "@" in base else base


def snapshot_document(snapshot: Any, packs: list[Any], pips: dict[str, str], comfyui_root: Path) -> dict[str, Any]:
    """ComfyUI-Manager's snapshot JSON for the installed `packs`, with partyflow's own snapshot added."""
    git_nodes: dict[str, Any] = {}
    cnr_nodes: dict[str, str] = {}
    file_nodes: list[dict[str, Any]] = []
    for pack in packs:
        if pack.single_file:
            filename = pack.path.name if pack.enabled else f"{pack.path.name}.disabled"
            file_nodes.append({"filename": filename, "disabled": not pack.enabled})
            continue
        identity = pack_identity(pack.path)
        if identity["kind"] == "nightly" and identity.get("url") and identity.get("commit"):
            git_nodes[identity["url"]] = {"hash": identity["commit"], "disabled": not pack.enabled}
        elif identity["kind"] == "cnr" and pack.enabled:  # as ComfyUI-Manager: disabled CNR packs are not kept
            cnr_nodes[identity["cnr_id"]] = identity["version"]
    return {"comfyui": _git(comfyui_root, "rev-parse", "HEAD"), "git_custom_nodes": git_nodes,
            "cnr_custom_nodes": cnr_nodes, "file_custom_nodes": file_nodes,
            "pips": {f"{name}=={version}": "" for name, version in sorted(pips.items())},
            "partyflow": snapshot.to_dict()}
