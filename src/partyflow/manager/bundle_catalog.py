"""Build catalogs: the YAML/JSON file that says which packs an offline bundle carries (`bundle create --catalog`).

A channel catalog (`catalog.py`) says what *exists*; a build catalog says what one organisation *ships*: each pack
pinned to a source and version, its archive's sha256, extra Python requirements, where a local copy lives for
builders without network, the security level its scan must pass, and the partyflow versions it works with.

    format: partyflow-node-catalog/1        # optional
    name: studio-nodes                       # optional: names the bundle file (default: the catalog file's stem)
    packs:
      - name: fast-nodes
        version: "1.2.0"
        source: https://packs.example.com/fast-nodes-1.2.0.zip   # or git+https://..., git+file://..., registry:ID
        sha256: 0f1e...                      # archives (and registry downloads): the exact bytes expected
        dependencies: ["numpy>=1.26"]        # Python requirements beyond the pack's own requirements.txt
        offline_path: vendor/fast-nodes-1.2.0.zip   # a local copy (relative to the catalog), used instead of source
        security_level: strong               # the pack's scan must pass at this level when the bundle is built
        host_version: ">=0.1,<1"             # partyflow versions it runs on; `bundle install` checks it

Everything here is checked before anything is fetched or written, and every error names the entry (its `name`,
else its position), so a typo in entry 40 costs seconds, not a half-built bundle.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from partyflow.manager.bundles import BundleError
from partyflow.manager.errors import ManagerError
from partyflow.manager.security import SecurityLevel
from partyflow.manager.sources import ARCHIVE_SUFFIXES, SourceSpec, validate_pack_name

__all__ = ["BuildCatalog", "BuildEntry", "CATALOG_FORMAT", "load_build_catalog", "parse_build_catalog"]

CATALOG_FORMAT = "partyflow-node-catalog/1"
MAX_CATALOG_BYTES = 8 << 20
_TOP_FIELDS = frozenset({"format", "name", "description", "packs"})
_ENTRY_FIELDS = frozenset({"name", "version", "source", "sha256", "dependencies", "offline_path", "security_level",
                           "host_version", "description"})
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_REGISTRY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_GIT_SCHEMES = ("git+https", "git+http", "git+ssh", "git+file")


@dataclass(frozen=True)
class BuildEntry:
    """One pack to ship. `kind` is how `source` is fetched: archive (http(s)/file URL of a zip, tarball or .py),
    git (`git+<url>`, `version` is the tag, branch or commit) or registry (`registry:<id>`, the Comfy Registry)."""

    name: str
    source: str
    kind: str
    version: str | None = None
    sha256: str | None = None
    dependencies: tuple[str, ...] = ()
    offline_path: Path | None = None
    security_level: SecurityLevel | None = None
    host_version: str | None = None
    index: int = 0

    @property
    def label(self) -> str:
        return f"catalog entry {self.name!r}"

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this entry's fetched content (the resume cache keys on it)."""
        return {"name": self.name, "source": self.source, "kind": self.kind, "version": self.version,
                "sha256": self.sha256, "offline_path": str(self.offline_path) if self.offline_path else None}

    def spec(self) -> SourceSpec:
        """The manager's source spec for this entry's own copy (a local file, or the URL when there is none);
        registry entries are resolved to a download URL by the builder (that asks the registry)."""
        if self.offline_path is not None:
            if self.offline_path.is_dir():
                is_repo = (self.offline_path / ".git").exists() or (self.offline_path / "HEAD").is_file()
                if self.kind == "git" and is_repo:
                    return SourceSpec("git", str(self.offline_path), self.version, None, self.name)
                return SourceSpec("dir", str(self.offline_path), self.version, None, self.name)
            return SourceSpec("archive", str(self.offline_path), self.version, self.sha256, self.name)
        if self.kind == "git":
            return SourceSpec("git", self.source[len("git+"):], self.version, None, self.name)
        parts = urllib.parse.urlsplit(self.source)
        if parts.scheme == "file":
            return SourceSpec("archive", urllib.parse.unquote(parts.path), self.version, self.sha256, self.name)
        return SourceSpec("url", self.source, self.version, self.sha256, self.name)


@dataclass(frozen=True)
class BuildCatalog:
    path: Path
    name: str
    entries: tuple[BuildEntry, ...]


def _fail(message: str, *, hint: str | None = None) -> BundleError:
    return BundleError("bad catalog", message, hint=hint)


def load_build_catalog(path: Path | str) -> BuildCatalog:
    """Read and check a build catalog (`.yaml`/`.yml`/`.json`; the content decides, JSON being YAML too)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CATALOG_BYTES:
            raise _fail(f"{path}: larger than {MAX_CATALOG_BYTES} bytes; not a catalog")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _fail(f"no such catalog file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{path}: cannot read the catalog ({exc})") from None
    return parse_build_catalog(_parse_text(text, path), path)


def _parse_text(text: str, path: Path) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    import yaml

    class Loader(yaml.SafeLoader):
        """Safe YAML whose unquoted numbers with a dot stay text: `version: 1.10` is "1.10", not 1.1."""

    Loader.yaml_implicit_resolvers = {
        key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
        for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    try:
        return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise _fail(f"{path}: not valid YAML{where}: {problem}") from None


def parse_build_catalog(data: Any, path: Path) -> BuildCatalog:
    """Check a parsed catalog document; `path` locates relative `offline_path`s and names the file in errors."""
    if not isinstance(data, Mapping):
        raise _fail(f"{path}: a catalog is a mapping with a 'packs' list, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - _TOP_FIELDS)
    if unknown:
        raise _fail(f"{path}: unknown field {unknown[0]!r} at the top level",
                    hint=f"known fields: {', '.join(sorted(_TOP_FIELDS))}")
    if data.get("format", CATALOG_FORMAT) != CATALOG_FORMAT:
        raise _fail(f"{path}: format is {data.get('format')!r}; this partyflow reads {CATALOG_FORMAT!r}")
    packs = data.get("packs")
    if not isinstance(packs, list) or not packs:
        raise _fail(f"{path}: 'packs' must be a non-empty list of entries")
    name = str(data.get("name") or path.stem)
    try:
        validate_pack_name(name)
    except ManagerError:
        raise _fail(f"{path}: catalog name {name!r} may use letters, digits and _ . + - only") from None
    base = path.parent.absolute()
    entries = [_entry(raw, index, base, path) for index, raw in enumerate(packs, start=1)]
    seen: dict[str, int] = {}
    for entry in entries:
        if entry.name in seen:
            raise _fail(f"{path}: catalog entry {entry.name!r} is listed twice (entries {seen[entry.name]} and "
                        f"{entry.index})")
        seen[entry.name] = entry.index
    return BuildCatalog(path=path, name=name, entries=tuple(entries))


def _entry(raw: Any, index: int, base: Path, path: Path) -> BuildEntry:
    where = f"{path}: catalog entry {index}"
    if not isinstance(raw, Mapping):
        raise _fail(f"{where} is not a mapping (got {type(raw).__name__})")
    if isinstance(raw.get("name"), str) and raw["name"].strip():
        where = f"{path}: catalog entry {raw['name']!r}"
    unknown = sorted(set(map(str, raw)) - _ENTRY_FIELDS)
    if unknown:
        raise _fail(f"{where}: unknown field {unknown[0]!r}", hint=f"known fields: {', '.join(sorted(_ENTRY_FIELDS))}")
    name = _text(raw, "name", where, required=True)
    assert name is not None
    try:
        validate_pack_name(name)
    except ManagerError:
        raise _fail(f"{where}: {name!r} is not a usable pack name (letters, digits and _ . + - only)") from None
    source = _text(raw, "source", where, required=True)
    assert source is not None
    kind = _source_kind(source, where)
    version = _text(raw, "version", where)
    sha256 = _text(raw, "sha256", where)
    if sha256 is not None:
        if not _SHA256.match(sha256):
            raise _fail(f"{where}: sha256 {sha256!r} is not 64 hexadecimal digits")
        if kind == "git":
            raise _fail(f"{where}: a sha256 applies to archives, not to a git source",
                        hint="pin a git source with a commit in 'version'")
        sha256 = sha256.lower()
    if kind == "registry" and not version:
        raise _fail(f"{where}: a registry source needs a 'version' (the bundle must be reproducible)")
    deps = raw.get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise _fail(f"{where}: 'dependencies' must be a list of Python requirement strings")
    for dep in deps:
        try:
            Requirement(dep)
        except InvalidRequirement as exc:
            raise _fail(f"{where}: dependency {dep!r} is not a valid requirement ({exc})") from None
    offline = _text(raw, "offline_path", where)
    offline_path = None
    if offline is not None:
        offline_path = (base / Path(offline).expanduser()).absolute()
        if not offline_path.exists():
            raise _fail(f"{where}: offline_path {offline_path} does not exist")
    level = _text(raw, "security_level", where)
    security_level = None
    if level is not None:
        try:
            security_level = SecurityLevel(level.strip().lower())
        except ValueError:
            raise _fail(f"{where}: security_level {level!r} is not one of "
                        f"{', '.join(s.value for s in SecurityLevel)}") from None
    host = _text(raw, "host_version", where)
    if host is not None:
        try:
            SpecifierSet(host)
        except InvalidSpecifier:
            raise _fail(f"{where}: host_version {host!r} is not a version specifier (for example '>=0.1,<1')") \
                from None
    return BuildEntry(name=name, source=source, kind=kind, version=version, sha256=sha256,
                      dependencies=tuple(deps), offline_path=offline_path, security_level=security_level,
                      host_version=host, index=index)


def _text(raw: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise _fail(f"{where}: '{key}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(f"{where}: '{key}' must be a string, got {type(value).__name__}")
    return str(value).strip()


def _source_kind(source: str, where: str) -> str:
    """archive, git or registry; any other URL is refused here, before anything is fetched."""
    if source.startswith("registry:"):
        ident = source[len("registry:"):]
        if not _REGISTRY_ID.match(ident):
            raise _fail(f"{where}: bad registry source {source!r}", hint="write registry:<pack id>")
        return "registry"
    try:
        parts = urllib.parse.urlsplit(source)
    except ValueError as exc:
        raise _fail(f"{where}: bad URL {source!r} ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme in _GIT_SCHEMES:
        if scheme == "git+file":
            local = Path(urllib.parse.unquote(parts.path))
            if not local.exists():
                raise _fail(f"{where}: bad URL {source!r}: {local} does not exist")
        elif not parts.netloc:
            raise _fail(f"{where}: bad URL {source!r}: no host")
        return "git"
    if scheme in ("http", "https"):
        if not parts.netloc or not parts.hostname:
            raise _fail(f"{where}: bad URL {source!r}: no host")
        try:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise _fail(f"{where}: bad URL {source!r}: the port is not a number") from None
        if parts.path.lower().endswith(".git"):
            raise _fail(f"{where}: bad URL {source!r}: a git repository is written git+{source}")
        if not parts.path.lower().endswith((*ARCHIVE_SUFFIXES, ".py")):
            raise _fail(f"{where}: bad URL {source!r}: an archive source must end in "
                        f"{', '.join((*ARCHIVE_SUFFIXES, '.py'))}",
                        hint="write git+https://... for a git repository, registry:<id> for the Comfy Registry")
        return "archive"
    if scheme == "file":
        local = Path(urllib.parse.unquote(parts.path))
        if not local.is_file():
            raise _fail(f"{where}: bad URL {source!r}: {local} is not a file",
                        hint="a local git repository is written git+file://...")
        return "archive"
    raise _fail(f"{where}: bad URL {source!r}: use https://, http://, file://, git+https://, git+ssh://, "
                "git+file:// or registry:<id>")
