"""Catalogs: which packs exist, where to get them, and which pack provides a node class.

Reads ComfyUI-Manager's `custom-node-list.json` (so its whole ecosystem is installable by name) and our own
catalog format, which adds `version`, `sha256` (of the archive), `publisher` and a reserved `signature`. Channels
come from config.toml (`[manager] channels = [{name, url, priority}]`, file:// or http(s)://); every fetched
channel is cached under the home so listing and installs from cached archives work offline.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
import re
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from partyflow.config import ConfigError, Home, Settings
from partyflow.manager.errors import ManagerError, UnknownPackError

OUR_FORMAT = "partyflow-catalog/1"
CATALOG_FILE = "custom-node-list.json"
NODE_MAP_FILE = "extension-node-map.json"
FETCH_TIMEOUT = 30.0
_INSTALL_TYPES = {"git-clone", "copy", "unzip", "cnr", "archive"}


class CatalogError(ManagerError):
    """A catalog that cannot be read or fetched; the message names the channel and what to do."""


@dataclass(frozen=True)
class Channel:
    """One catalog source; a higher priority wins when two channels list the same pack."""

    name: str
    url: str
    priority: int = 0


@dataclass(frozen=True)
class CatalogEntry:
    """One pack (one version of it, in our format) as a catalog lists it."""

    id: str
    title: str
    reference: str
    files: tuple[str, ...]
    install_type: str
    author: str = ""
    description: str = ""
    pip: tuple[str, ...] = ()
    nodename_pattern: str | None = None
    tags: tuple[str, ...] = ()
    version: str | None = None
    sha256: str | None = None
    publisher: str | None = None
    signature: str | None = None
    channel: str = ""
    priority: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def aliases(self) -> set[str]:
        """Names a user may type for this pack: its id, title and repository name, case-folded."""
        names = {self.id, self.title, _repo_name(self.reference)}
        names.update(_repo_name(f) for f in self.files if self.install_type == "git-clone")
        return {n.casefold() for n in names if n}


def entry_from_json(raw: Mapping[str, Any], *, channel: str = "", priority: int = 0) -> CatalogEntry:
    """Build an entry from one JSON object of either format; raises CatalogError naming what is wrong."""
    if not isinstance(raw, Mapping):
        raise CatalogError(f"catalog entry is not an object: {raw!r:.80}")
    files = raw.get("files") or []
    if isinstance(files, str):
        files = [files]
    install_type = str(raw.get("install_type") or ("archive" if raw.get("sha256") else "git-clone"))
    if install_type not in _INSTALL_TYPES:
        raise CatalogError(f"catalog entry {raw.get('title')!r}: unknown install_type {install_type!r}")
    reference = str(raw.get("reference") or (files[0] if files else ""))
    ident = str(raw.get("id") or _repo_name(reference) or raw.get("title") or "").strip()
    if not ident:
        raise CatalogError(f"catalog entry without id, reference or title: {dict(raw)!r:.120}")
    known = {"id", "title", "reference", "files", "install_type", "author", "description", "pip",
             "nodename_pattern", "tags", "version", "sha256", "publisher", "signature"}
    tags = raw.get("tags") or ()
    return CatalogEntry(
        id=ident, title=str(raw.get("title") or ident), reference=reference, files=tuple(str(f) for f in files),
        install_type=install_type, author=str(raw.get("author") or ""),
        description=str(raw.get("description") or ""), pip=tuple(str(p) for p in raw.get("pip") or ()),
        nodename_pattern=raw.get("nodename_pattern"),
        tags=tuple(t.strip() for t in tags.split(",")) if isinstance(tags, str) else tuple(map(str, tags)),
        version=_opt(raw.get("version")), sha256=_opt(raw.get("sha256")), publisher=_opt(raw.get("publisher")),
        signature=_opt(raw.get("signature")), channel=channel, priority=priority,
        extra={k: v for k, v in raw.items() if k not in known},
    )


def parse_catalog(data: Mapping[str, Any], *, channel: str = "", priority: int = 0) -> list[CatalogEntry]:
    """Entries of a catalog document: ComfyUI-Manager's `{"custom_nodes": [...]}` or ours (same key plus
    `"format": "partyflow-catalog/1"`). Bad entries are skipped only in ComfyUI-Manager's (community) lists."""
    if not isinstance(data, Mapping) or not isinstance(data.get("custom_nodes"), list):
        raise CatalogError(f"channel {channel or '?'}: not a catalog (expected an object with 'custom_nodes')")
    ours = data.get("format") == OUR_FORMAT
    entries = []
    for raw in data["custom_nodes"]:
        try:
            entries.append(entry_from_json(raw, channel=channel, priority=priority))
        except CatalogError:
            if ours:
                raise
    return entries


@dataclass(frozen=True)
class NodeMap:
    """extension-node-map.json: repository URL -> node class names, plus name patterns and preemptions."""

    nodes: Mapping[str, tuple[str, ...]]
    patterns: tuple[tuple[str, str], ...] = ()
    preemptions: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NodeMap:
        nodes: dict[str, tuple[str, ...]] = {}
        patterns: list[tuple[str, str]] = []
        preempt: dict[str, str] = {}
        for url, value in data.items():
            if not (isinstance(value, list) and value and isinstance(value[0], list)):
                continue
            meta = value[1] if len(value) > 1 and isinstance(value[1], Mapping) else {}
            nodes[url] = tuple(str(n) for n in value[0])
            if meta.get("nodename_pattern"):
                patterns.append((str(meta["nodename_pattern"]), url))
            for name in meta.get("preemptions") or ():
                preempt[str(name)] = url
        return cls(nodes=nodes, patterns=tuple(patterns), preemptions=preempt)

    def provider(self, class_type: str) -> str | None:
        """The repository that provides a node class: preemptions first, then exact names, then patterns."""
        if class_type in self.preemptions:
            return self.preemptions[class_type]
        for url, names in self.nodes.items():
            if class_type in names:
                return url
        for pattern, url in self.patterns:
            try:
                if re.search(pattern, class_type):
                    return url
            except re.error:
                continue
        return None


@dataclass(frozen=True)
class Catalog:
    """The merged view of all channels; lookups prefer the highest priority, then the newest version."""

    entries: tuple[CatalogEntry, ...]
    node_map: NodeMap = field(default_factory=lambda: NodeMap(nodes={}))

    def find(self, name: str, version: str | None = None) -> CatalogEntry:
        """The entry a user means by `name` (id, title or repository name, any case)."""
        key = name.casefold()
        hits = [e for e in self.entries if key in e.aliases]
        if not hits:
            raise UnknownPackError(name, self.suggest(name), where="catalog")
        if version is not None:
            # git refs and registry versions need not be listed; archives must be the listed version
            versioned = [e for e in hits if e.version == version]
            hits = versioned or [e for e in hits if e.install_type in ("git-clone", "cnr")]
            if not hits:
                listed = sorted({e.version for e in self.entries if key in e.aliases and e.version},
                                key=_version_key)
                raise CatalogError(f"pack {name!r} has no version {version!r} in any channel",
                                   pack=name, hint=f"listed: {', '.join(listed) or 'none'}", user_error=True)
        return max(hits, key=lambda e: (e.priority, _version_key(e.version)))

    def suggest(self, name: str, n: int = 5) -> list[str]:
        ids = sorted({e.id for e in self.entries})
        folded = {i.casefold(): i for i in ids}
        close = difflib.get_close_matches(name.casefold(), list(folded), n=n, cutoff=0.6)
        subs = [i for f, i in folded.items() if name.casefold() in f and len(name) >= 3]
        return list(dict.fromkeys([folded[c] for c in close] + subs))[:n]

    def latest(self) -> dict[str, CatalogEntry]:
        """One entry per pack id: the one `find` would choose."""
        best: dict[str, CatalogEntry] = {}
        for entry in self.entries:
            cur = best.get(entry.id)
            if cur is None or (entry.priority, _version_key(entry.version)) > (cur.priority,
                                                                                _version_key(cur.version)):
                best[entry.id] = entry
        return best

    def versions(self, name: str) -> list[str]:
        found = self.find(name)
        return sorted({e.version for e in self.entries if e.id == found.id and e.version},
                      key=_version_key)

    def find_pack_for_nodes(self, class_types: Iterable[str]) -> dict[str, CatalogEntry | None]:
        """Which pack provides each node class (None when no catalog knows): extension-node-map.json first,
        then the `nodename_pattern` of catalog entries."""
        by_ref: dict[str, CatalogEntry] = {}
        for entry in sorted(self.entries, key=lambda e: (e.priority, _version_key(e.version))):
            for url in (entry.reference, *entry.files):
                by_ref[_norm_url(url)] = entry
        result: dict[str, CatalogEntry | None] = {}
        for class_type in class_types:
            url = self.node_map.provider(class_type)
            entry = by_ref.get(_norm_url(url)) if url else None
            if entry is None:
                entry = next((e for e in self.entries if e.nodename_pattern
                              and _safe_search(e.nodename_pattern, class_type)), None)
            result[class_type] = entry
        return result


# ---- channels and the cache --------------------------------------------------------------------------------

def channels(home: Home) -> list[Channel]:
    """Channels from config.toml's `[manager] channels`, highest priority first."""
    raw = Settings.load(home).raw.get("manager", {}).get("channels", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{home.config_file}: [manager] channels must be a list of {{name, url, priority}}")
    found = []
    for item in raw:
        if not isinstance(item, Mapping) or "url" not in item:
            raise ConfigError(f"{home.config_file}: each [manager] channel needs a url, got {item!r}")
        name = str(item.get("name") or _slug(str(item["url"])))
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ConfigError(f"{home.config_file}: channel name {name!r} may use letters, digits, . _ - only")
        found.append(Channel(name=name, url=str(item["url"]), priority=int(item.get("priority", 0))))
    return sorted(found, key=lambda c: -c.priority)


def cache_dir(home: Home) -> Path:
    return home.root / "cache" / "catalog"


def archive_cache(home: Home) -> Path:
    return home.root / "cache" / "archives"


def refresh(home: Home, *, timeout: float = FETCH_TIMEOUT) -> dict[str, str | None]:
    """Fetch every channel into the cache; returns channel -> error (None when fetched). A failed channel
    keeps its previous cache, so one unreachable mirror never empties the catalog."""
    results: dict[str, str | None] = {}
    for channel in channels(home):
        target = cache_dir(home) / channel.name
        try:
            data = fetch_bytes(_file_url(channel.url, CATALOG_FILE), timeout=timeout)
            document = _json(data, channel.name)
            parse_catalog(document, channel=channel.name)
            _check_signatures(home, channel.name, document)
            _write_atomic(target / CATALOG_FILE, data)
            results[channel.name] = None
        except (OSError, CatalogError) as exc:
            results[channel.name] = str(exc)
            continue
        try:
            node_map = fetch_bytes(_file_url(channel.url, NODE_MAP_FILE), timeout=timeout)
            _json(node_map, channel.name)
            _write_atomic(target / NODE_MAP_FILE, node_map)
        except (OSError, CatalogError):
            pass  # the node map is optional
    return results


def load(home: Home, *, refresh_missing: bool = True) -> Catalog:
    """The merged catalog from the cache; a channel never fetched is fetched now when `refresh_missing`."""
    chans = channels(home)
    if refresh_missing and any(not (cache_dir(home) / c.name / CATALOG_FILE).exists() for c in chans):
        refresh(home)
    entries: list[CatalogEntry] = []
    node_data: dict[str, Any] = {}
    for channel in sorted(chans, key=lambda c: c.priority):  # later (higher) channels override the node map
        base = cache_dir(home) / channel.name
        if not (base / CATALOG_FILE).exists():
            continue
        data = _json((base / CATALOG_FILE).read_bytes(), channel.name)
        _check_signatures(home, channel.name, data)
        entries.extend(_absolute_files(parse_catalog(data, channel=channel.name, priority=channel.priority),
                                       data, channel.url))
        if (base / NODE_MAP_FILE).exists():
            node_data.update(_json((base / NODE_MAP_FILE).read_bytes(), channel.name))
    return Catalog(entries=tuple(entries), node_map=NodeMap.from_json(node_data))


def cached_archive(home: Home, sha256: str | None) -> Path | None:
    if not sha256:
        return None
    hits = sorted(archive_cache(home).glob(f"{sha256.lower()}.*")) if archive_cache(home).exists() else []
    return hits[0] if hits else None


def fetch_archive(home: Home, entry: CatalogEntry, *, timeout: float = FETCH_TIMEOUT) -> Path:
    """Download an entry's archive into the cache, verifying its sha256; a cached copy is used as is."""
    if not entry.sha256 or not entry.files:
        raise CatalogError(f"pack {entry.id!r}: no archive with a sha256 in channel {entry.channel!r}")
    hit = cached_archive(home, entry.sha256)
    if hit is not None:
        return hit
    data = fetch_bytes(entry.files[0], timeout=timeout)
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry.sha256.lower():
        raise CatalogError(f"pack {entry.id!r}: archive {entry.files[0]} has sha256 {digest}, the catalog "
                           f"says {entry.sha256}; refusing it")
    suffix = ".tar.gz" if entry.files[0].endswith((".tar.gz", ".tgz")) else ".zip"
    target = archive_cache(home) / f"{digest}{suffix}"
    _write_atomic(target, data)
    return target


def resolve(name: str, home: Home, *, catalog: Catalog | None = None) -> Any:  # -> sources.SourceSpec
    """Turn `NAME[@VERSION]` into a SourceSpec for packs.install; a cached archive makes it an offline install.
    Raises UnknownPackError (with suggestions) for names no channel lists."""
    from partyflow.manager.sources import SourceSpec

    base, _, version = name.partition("@")
    catalog = catalog if catalog is not None else load(home)
    entry = catalog.find(base, version or None)
    version = version or entry.version
    if entry.install_type == "git-clone":
        # the folder is named after the repository, as ComfyUI-Manager does (its snapshots key on that)
        return SourceSpec(kind="git", location=entry.files[0] if entry.files else entry.reference,
                          version=version or None, sha256=None, name=None)
    if entry.install_type == "cnr":
        from partyflow.manager.registry import RegistryClient

        info = RegistryClient.for_home(home).install_info(entry.id, version or None)
        return SourceSpec(kind="url", location=info.download_url, version=info.version, sha256=None,
                          name=entry.id)
    cached = cached_archive(home, entry.sha256)
    if cached is not None:
        return SourceSpec(kind="archive", location=str(cached), version=version, sha256=entry.sha256,
                          name=entry.id)
    if len(entry.files) != 1:
        raise CatalogError(f"pack {entry.id!r} ({entry.install_type}) lists {len(entry.files)} files; only "
                           "single-archive or single-file packs can be installed by name")
    return SourceSpec(kind="url", location=entry.files[0], version=version, sha256=entry.sha256,
                      name=None if entry.install_type == "copy" else entry.id)


def find_pack_for_nodes(class_types: Iterable[str], home: Home) -> dict[str, CatalogEntry | None]:
    return load(home).find_pack_for_nodes(class_types)


# ---- helpers -----------------------------------------------------------------------------------------------

def fetch_bytes(url: str, *, timeout: float = FETCH_TIMEOUT, limit: int = 512 * 1024 * 1024) -> bytes:
    """GET a file:// or http(s):// URL; other schemes are refused (no ftp, no data:)."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "file" or scheme == "":
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)) if scheme else Path(url)
        return path.read_bytes()
    if scheme not in ("http", "https"):
        raise CatalogError(f"unsupported URL scheme in {url!r}: use file://, http:// or https://")
    request = urllib.request.Request(url, headers={"User-Agent": "partyflow-manager"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
        data = response.read(limit + 1)
    if len(data) > limit:
        raise CatalogError(f"{url}: larger than {limit} bytes; refusing it")
    return data


def _check_signatures(home: Home, channel: str, document: Any) -> None:
    """Signed catalogs (signing.py): a signature present must verify against the home's keyring, and with
    `[manager] require_signed_catalogs` (or a channel's `require_signature`) one must be present."""
    from partyflow.manager.signing import SignatureError, check_channel

    try:
        check_channel(home, channel, document)
    except SignatureError as exc:
        raise CatalogError(f"channel {channel}: {exc.message}", hint=exc.hint, user_error=True) from exc


def _absolute_files(entries: list[CatalogEntry], document: Any, channel_url: str) -> list[CatalogEntry]:
    """Our format may list archives relative to the catalog (a mirror that moves between hosts keeps working);
    they resolve against the channel's URL. ComfyUI-Manager's lists are left as they are."""
    if not isinstance(document, Mapping) or document.get("format") != OUR_FORMAT:
        return entries
    base = _file_url(channel_url, CATALOG_FILE)
    if "://" not in base:
        base = Path(base).expanduser().absolute().as_uri()
    return [dataclasses.replace(e, files=tuple(urllib.parse.urljoin(base, f) for f in e.files))
            if e.install_type in ("archive", "copy") else e for e in entries]


def _file_url(channel_url: str, filename: str) -> str:
    """A channel URL may name the catalog file itself or the folder that holds it."""
    if channel_url.endswith(".json"):
        return channel_url if filename == CATALOG_FILE else channel_url.rsplit("/", 1)[0] + "/" + filename
    return channel_url.rstrip("/") + "/" + filename


def _json(data: bytes, channel: str) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CatalogError(f"channel {channel}: not valid JSON ({exc})") from exc


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _repo_name(url: str) -> str:
    path = urllib.parse.urlsplit(url).path.rstrip("/")
    name = path.rsplit("/", 1)[-1] if path else ""
    return name[:-4] if name.endswith(".git") else name


def _norm_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return (url[:-4] if url.endswith(".git") else url).casefold()


def _slug(url: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", url).strip("-")[-60:] or "channel"


def _opt(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _safe_search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def _version_key(version: str | None) -> tuple[int, Any]:
    if version is None:
        return (0, ())
    try:
        from packaging.version import Version

        return (1, Version(version))
    except Exception:  # noqa: BLE001 - an unparsable version sorts before any parsable one
        return (0, (version,))


# ---- outdated packs ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outdated:
    name: str
    installed: str
    latest: str
    source: str


def outdated(home: Home, *, catalog: Catalog | None = None, check_git: bool = False,
             git_timeout: float = 20.0) -> list[Outdated]:
    """Managed packs with a newer catalog version; with `check_git`, also git packs that follow a branch whose
    remote head moved (asks each remote: network)."""
    from partyflow.manager.packs import PackManager

    catalog = catalog if catalog is not None else load(home)
    by_ref: dict[str, CatalogEntry] = {}
    for entry in catalog.latest().values():
        for url in (entry.reference, *entry.files):
            by_ref.setdefault(_norm_url(url), entry)
    found = []
    for pack in PackManager(home).installed():
        record = pack.record
        if record is None:
            continue
        entry = None
        if record.catalog:
            try:
                entry = catalog.find(record.catalog)
            except UnknownPackError:
                entry = None
        entry = entry or by_ref.get(_norm_url(record.source.location))
        if entry is not None and entry.version and record.version \
                and _version_key(entry.version) > _version_key(record.version):
            found.append(Outdated(pack.name, record.version, entry.version, entry.channel))
        elif check_git and record.source.kind == "git" and record.ref_kind == "branch" and record.commit:
            head = _remote_head(record.source.location, record.version or "HEAD", git_timeout)
            if head and head != record.commit:
                found.append(Outdated(pack.name, record.commit[:12], head[:12], record.source.location))
    return found


def _remote_head(url: str, ref: str, timeout: float) -> str | None:
    import subprocess

    try:
        # `--`: a recorded location starting with '-' is a repository, never an option such as --upload-pack
        done = subprocess.run(["git", "ls-remote", "--", url, ref], capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = done.stdout.split("\n", 1)[0]
    return line.split("\t", 1)[0] if done.returncode == 0 and line else None
