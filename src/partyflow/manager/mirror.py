"""A local mirror: the packs and wheels of verified bundles, laid out so stock tools install from it.

`build` writes, into one folder:
* `custom-node-list.json`, a catalog in our format whose archive URLs are relative (a home's channel pointing at
  the folder, a file:// URL or an http:// URL of the mirror resolves them), signed when a key is given;
* `packs/<name>-<version>.zip` (or `.py`), the pack archives the catalog names, with their sha256;
* `wheels/*.whl` and `simple/`, a PEP 503 "simple" index of them, so `pip` and `uv` install with
  `--index-url http://HOST:PORT/simple/` and `[manager] index_url` works for pack dependencies.
Building again with more bundles adds to what is there; the same name and version (or the same wheel file)
with different content is refused rather than silently replaced.

`serve` is a plain static HTTP server over that folder (127.0.0.1 unless asked otherwise): no directory
listings, nothing outside the folder, GET and HEAD only.
"""

from __future__ import annotations

import functools
import hashlib
import html
import http.server
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

from partyflow.config import Home
from partyflow.manager.bundles import BundleError, OpenedBundle, verify_bundle
from partyflow.manager.catalog import CATALOG_FILE, OUR_FORMAT
from partyflow.manager.keys import Keyring
from partyflow.manager.provenance import atomic_write_json

__all__ = ["MirrorResult", "build_mirror", "make_server", "write_simple_index"]


@dataclass
class MirrorResult:
    directory: Path
    packs_added: list[str] = field(default_factory=list)
    wheels_added: list[str] = field(default_factory=list)
    bundles: list[str] = field(default_factory=list)
    signed_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "packs_added": self.packs_added,
                "wheels_added": self.wheels_added, "bundles": self.bundles, "signed_by": self.signed_by}


def build_mirror(home: Home, directory: Path | str, bundles: Sequence[Path | str], *, key: str | None = None,
                 allow_unsigned: bool = False) -> MirrorResult:
    """Verify each bundle against the home's keyring and add its packs and wheels to the mirror folder."""
    out = Path(directory)
    for sub in ("packs", "wheels", "simple"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    signer = Keyring(home).signer(key) if key is not None else None
    catalog = _existing_catalog(out)
    entries = {(e["id"], e.get("version")): e for e in catalog["custom_nodes"]}
    result = MirrorResult(out, signed_by=signer.name if signer else None)
    home.bundles.mkdir(parents=True, exist_ok=True)
    for bundle in bundles:
        with tempfile.TemporaryDirectory(dir=home.bundles, prefix=".mirror-") as tmp:
            opened = verify_bundle(bundle, home, allow_unsigned=allow_unsigned, extract_to=Path(tmp))
            _add_bundle(opened, Path(tmp), out, entries, result)
        result.bundles.append(opened.digest)
    document: dict[str, Any] = {"format": OUR_FORMAT, "custom_nodes": [entries[k] for k in sorted(
        entries, key=lambda k: (k[0].casefold(), k[1] or ""))]}
    if signer is not None:
        from partyflow.manager.signing import sign_catalog

        document = sign_catalog(document, signer)
    atomic_write_json(out / CATALOG_FILE, document)
    write_simple_index(out)
    return result


def _existing_catalog(out: Path) -> dict[str, Any]:
    path = out / CATALOG_FILE
    if not path.exists():
        return {"format": OUR_FORMAT, "custom_nodes": []}
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != OUR_FORMAT:
        raise BundleError("usage", f"{path} is not a partyflow mirror catalog; choose an empty folder")
    return {"format": OUR_FORMAT,
            "custom_nodes": [{k: v for k, v in e.items() if k != "signature"} for e in data["custom_nodes"]]}


def _add_bundle(opened: OpenedBundle, extracted: Path, out: Path, entries: dict[tuple[str, Any], dict[str, Any]],
                result: MirrorResult) -> None:
    manifest = opened.manifest
    publisher = opened.signer.name if opened.signer else ""  # only a verified signer, never a manifest's claim
    for pack in manifest.packs:
        source = extracted.joinpath(*pack.member.split("/"))
        digest = _sha256(source)
        suffix = ".py" if pack.member.endswith(".py") else ".zip"
        filename = f"{pack.name}-{pack.version or digest[:12]}{suffix}"
        key = (pack.name, pack.version)
        old = entries.get(key)
        if old is not None and old.get("sha256") != digest and pack.version:
            raise BundleError("conflict", f"the mirror already has {pack.name} {pack.version} with other content",
                              hint="give the new pack a new version")
        _place(source, out / "packs" / filename, digest)
        entries[key] = {  # an unversioned pack: the last bundle built in wins
            "id": pack.name, "title": pack.name, "version": pack.version, "files": [f"packs/{filename}"],
            "install_type": "archive" if suffix == ".zip" else "copy", "sha256": digest,
            "reference": pack.source if re.match(r"^(https?|git|ssh)://", pack.source) else "",
            "publisher": publisher, "author": publisher,
            "description": f"from bundle {opened.digest[:12]} (sequence {manifest.sequence})"}
        if old is None:
            result.packs_added.append(f"{pack.name} {pack.version or digest[:12]}")
    for wheel in manifest.wheels:
        source = extracted.joinpath(*wheel.member.split("/"))
        name = wheel.member.rsplit("/", 1)[-1]
        if _place(source, out / "wheels" / name, manifest.files[wheel.member][0]):
            result.wheels_added.append(name)


def _place(source: Path, target: Path, digest: str) -> bool:
    """Copy a verified file into the mirror; an existing file must be identical. True when it was added."""
    if target.exists():
        if _sha256(target) != digest:
            raise BundleError("conflict", f"{target} already exists in the mirror with other content",
                              hint="a file of that name was published twice with different bytes")
        return False
    temp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, temp)
    os.replace(temp, target)
    return True


def write_simple_index(out: Path) -> None:
    """PEP 503 pages for every wheel in `out/wheels`: `simple/index.html` and `simple/<project>/index.html`,
    each link carrying the file's sha256 so installers check what they download."""
    projects: dict[str, list[Path]] = {}
    for wheel in sorted((out / "wheels").glob("*.whl")):
        projects.setdefault(str(canonicalize_name(parse_wheel_filename(wheel.name)[0])), []).append(wheel)
    simple = out / "simple"
    for stale in simple.iterdir() if simple.is_dir() else ():
        if stale.is_dir() and stale.name not in projects:
            shutil.rmtree(stale)
    links = "".join(f'    <a href="{html.escape(p)}/">{html.escape(p)}</a><br>\n' for p in sorted(projects))
    _write_page(simple / "index.html", "Simple index", links)
    for project, wheels in projects.items():
        rows = "".join(f'    <a href="../../wheels/{html.escape(w.name)}#sha256={_sha256(w)}">'
                       f"{html.escape(w.name)}</a><br>\n" for w in wheels)
        _write_page(simple / project / "index.html", f"Links for {project}", rows)


def _write_page(path: Path, title: str, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    page = (f'<!DOCTYPE html>\n<html>\n  <head><meta name="pypi:repository-version" content="1.0">'
            f"<title>{html.escape(title)}</title></head>\n  <body>\n{body}  </body>\n</html>\n")
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(page, encoding="utf-8")
    os.replace(temp, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---- serving -----------------------------------------------------------------------------------------------

class _MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """Static files of the mirror folder only: no listings, nothing reached through links out of it."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".whl": "application/octet-stream",
                      ".json": "application/json", ".zip": "application/zip"}
    quiet = True

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(404, "no listing")
        return None

    def translate_path(self, path: str) -> str:
        local = super().translate_path(path)
        root = os.path.realpath(self.directory)
        real = os.path.realpath(local)
        if real != root and not real.startswith(root + os.sep):
            return os.path.join(root, "\0missing")  # a link out of the folder reads as absent
        return local

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if not self.quiet:
            super().log_message(format, *args)


def make_server(directory: Path | str, host: str = "127.0.0.1", port: int = 8000, *,
                quiet: bool = True) -> http.server.ThreadingHTTPServer:
    """A ready (bound, not yet serving) HTTP server for the mirror folder; port 0 picks a free port."""
    root = Path(directory).resolve()
    if not (root / CATALOG_FILE).is_file() and not (root / "simple").is_dir():
        raise BundleError("usage", f"{root} is not a mirror (no {CATALOG_FILE} and no simple/)",
                          hint="build one with 'partyflow mirror build DIR --bundle X.pfb'")
    handler = type("Handler", (_MirrorHandler,), {"quiet": quiet})
    return http.server.ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(root)))
