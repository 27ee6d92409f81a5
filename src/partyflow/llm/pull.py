"""Downloading models into the home (`partyflow models pull`), with resume and checksums.

Sources:

    https://host/path/NAME.gguf        one GGUF file            -> models/gguf/NAME.gguf
    hf:ORG/REPO[@REVISION]             a transformers folder    -> models/llm/REPO/
    hf:ORG/REPO[@REVISION]/FILE.gguf   one GGUF file of a repo  -> models/gguf/FILE.gguf

`hf:` names resolve under `$PARTYFLOW_HF_ENDPOINT` (default https://huggingface.co) with the hub's URL layout
(`/api/models/ORG/REPO/revision/REV?blobs=true` lists files, `/ORG/REPO/resolve/REV/FILE` serves one), so a
mirror or an internal proxy works by pointing the variable at it. `$PARTYFLOW_HF_TOKEN` (or `$HF_TOKEN`) is sent
to that endpoint for gated or private repos; httpx drops it on redirects to other hosts.

Why the pieces are shaped this way:

* **Resume**: bytes go to `FILE.part` beside the target (inside a hidden `.NAME.pull/` folder for model
  folders); a later attempt, in this run or the next, asks for the rest with `Range: bytes=N-`. A server that
  ignores the range (200 instead of 206) is handled by starting the file over. Dropped connections are retried
  a few times within one run, each retry resuming.
* **Checksum**: the expected sha256 is, first to last, `--sha256`, the hub's file list (`lfs.sha256`), the
  server's `X-Linked-Etag` header (on the response or a redirect before it; used when it is 64 hex digits, as the
  hub sends for large files) or a `URL.sha256` sidecar file (for plain URLs). A mismatch deletes the download:
  resuming a corrupt file can never repair it. Without any of these the file is kept and reported unverified.
* **Atomic placement**: the target appears only complete and verified (`os.replace` of the file, a rename of
  the folder), so a loader never sees half a model.

Progress is reported through a small `PullProgress` protocol, so the library draws nothing itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal, Protocol
from urllib.parse import quote, unquote, urlsplit

import httpx

from partyflow.config import Home
from partyflow.llm.errors import LLMError

HF_ENDPOINT_ENV = "PARTYFLOW_HF_ENDPOINT"
HF_TOKEN_ENVS = ("PARTYFLOW_HF_TOKEN", "HF_TOKEN")
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
DEFAULT_ATTEMPTS = 4

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HF_NAME = re.compile(r"^hf:(?P<org>[\w.-]+)/(?P<repo>[\w.-]+)(?:@(?P<rev>[\w./-]+?))?(?:/(?P<file>[^@]+))?$")
# Weights in formats other than safetensors are left out when the repo has safetensors: one copy is enough.
_OTHER_WEIGHTS = (".bin", ".pt", ".pth", ".h5", ".msgpack", ".ot", ".onnx", ".gguf")


class PullError(LLMError):
    """A download that failed; the message names the URL, the hint says what to do (often: run it again)."""

    default_hint = "Run the same command again: it resumes where it stopped"


class PullSourceError(PullError):
    """The source or name given cannot be pulled at all (bad form, not a model); nothing was downloaded."""

    default_hint = "Use https://.../NAME.gguf, hf:ORG/REPO or hf:ORG/REPO/FILE.gguf"


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: `name` is its path inside the target folder (or the target file's name)."""

    url: str
    name: str
    sha256: str | None = None
    sha256_source: str = ""


@dataclass(frozen=True)
class PullPlan:
    """What a source resolves to before anything is downloaded."""

    source: str
    kind: Literal["gguf", "folder"]
    target: Path
    files: tuple[RemoteFile, ...]
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # may hold a token


@dataclass(frozen=True)
class PulledFile:
    name: str
    bytes: int
    sha256: str
    verified_by: str  # "--sha256", "hub file list", "X-Linked-Etag", "sidecar", or "" (unverified)
    resumed_from: int


@dataclass(frozen=True)
class PullResult:
    source: str
    kind: Literal["gguf", "folder"]
    target: Path
    files: tuple[PulledFile, ...]
    skipped: bool = False  # the target was already there (and `force` was off)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def verified(self) -> bool:
        return bool(self.files) and all(f.verified_by for f in self.files)


class PullProgress(Protocol):
    """Where a pull reports progress; the CLI implements it with a rich progress bar."""

    def start(self, name: str, total: int | None, done: int) -> None: ...

    def advance(self, name: str, nbytes: int) -> None: ...

    def finish(self, name: str) -> None: ...


class NoProgress:
    """Reports nothing (library callers and tests that do not care)."""

    def start(self, name: str, total: int | None, done: int) -> None:
        pass

    def advance(self, name: str, nbytes: int) -> None:
        pass

    def finish(self, name: str) -> None:
        pass


# --- the entry point ---------------------------------------------------------------------------------------------

def pull(source: str, home: Home, *, name: str | None = None, sha256: str | None = None, force: bool = False,
         progress: PullProgress | None = None, attempts: int = DEFAULT_ATTEMPTS, timeout: float = 30.0,
         environ: Mapping[str, str] | None = None, transport: httpx.BaseTransport | None = None) -> PullResult:
    """Download `source` into the home's models/ and return what landed where.

    Raises `PullSourceError` for a source that cannot be pulled and `PullError` for a failed download (the
    partial file stays for the next attempt, except after a checksum mismatch).
    """
    environ = os.environ if environ is None else environ
    with _client(timeout, transport) as client:
        plan = plan_pull(source, home, name=name, sha256=sha256, client=client, environ=environ)
        if plan.target.exists() and not force:
            return PullResult(plan.source, plan.kind, plan.target, (), skipped=True)
        fetch = _Fetcher(client, plan.headers, progress or NoProgress(), max(1, attempts))
        if plan.kind == "gguf":
            files = (_pull_file(fetch, plan.files[0], plan.target),)
        else:
            files = _pull_folder(fetch, plan)
    return PullResult(plan.source, plan.kind, plan.target, files)


@contextmanager
def _client(timeout: float, transport: httpx.BaseTransport | None) -> Iterator[httpx.Client]:
    # identity encoding: byte ranges must count stored bytes, not a compressed stream's
    with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), follow_redirects=True,
                      headers={"Accept-Encoding": "identity", "User-Agent": "partyflow-pull"},
                      transport=transport) as client:
        yield client


# --- planning: from a source string to files and a target -------------------------------------------------------

def plan_pull(source: str, home: Home, *, name: str | None = None, sha256: str | None = None,
              client: httpx.Client, environ: Mapping[str, str]) -> PullPlan:
    """Resolve `source` (listing a hub repo's files when it is a folder) without downloading any model bytes."""
    source = source.strip()
    expected = _checked_sha256(sha256)
    if source.startswith("hf:"):
        return _plan_hub(source, home, name, expected, client, environ)
    if source.startswith(("http://", "https://")):
        return _plan_url(source, home, name, expected, client)
    raise PullSourceError(f"cannot pull {source!r}: not an http(s) URL or an hf:ORG/REPO name")


def _checked_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not _SHA256.match(value):
        raise PullSourceError(f"--sha256 {value!r} is not 64 hexadecimal digits",
                              hint="Copy the sha256 from the model's download page")
    return value


def _plan_url(url: str, home: Home, name: str | None, expected: str | None, client: httpx.Client) -> PullPlan:
    filename = unquote(PurePosixPath(urlsplit(url).path).name)
    if not filename.lower().endswith(".gguf"):
        raise PullSourceError(f"{url} does not name a .gguf file",
                              hint="A URL must point at one .gguf file; pull a model folder with hf:ORG/REPO")
    target = _target(home, "gguf", _gguf_name(name or filename))
    remote = RemoteFile(url, target.name, expected, "--sha256" if expected else "")
    if expected is None and (sidecar := _sidecar_sha256(client, url)) is not None:
        remote = RemoteFile(url, target.name, sidecar, "sidecar")
    return PullPlan(url, "gguf", target, (remote,))


def _sidecar_sha256(client: httpx.Client, url: str) -> str | None:
    """The digest in `URL.sha256` (`HEX` or `HEX  NAME`, as sha256sum writes it), when the server has one."""
    try:
        response = client.get(url + ".sha256")
    except httpx.HTTPError:
        return None
    if response.status_code != 200 or len(response.content) > 4096:
        return None
    words = response.text.split()
    return words[0].lower() if words and _SHA256.match(words[0].lower()) else None


def _plan_hub(source: str, home: Home, name: str | None, expected: str | None, client: httpx.Client,
              environ: Mapping[str, str]) -> PullPlan:
    match = _HF_NAME.match(source)
    if match is None:
        raise PullSourceError(f"{source!r} is not hf:ORG/REPO, hf:ORG/REPO@REVISION or hf:ORG/REPO/FILE.gguf")
    repo, revision, filename = f"{match['org']}/{match['repo']}", match["rev"] or "main", match["file"]
    endpoint = environ.get(HF_ENDPOINT_ENV, "").strip().rstrip("/") or DEFAULT_HF_ENDPOINT
    headers = _hub_headers(environ)
    listing = _hub_listing(client, endpoint, repo, revision, headers, source)

    def remote(path: str, local_name: str, digest: str | None) -> RemoteFile:
        url = f"{endpoint}/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"
        return RemoteFile(url, local_name, digest, "hub file list" if digest else "")

    if filename is not None:
        if not filename.lower().endswith(".gguf"):
            raise PullSourceError(f"{source}: {filename!r} is not a .gguf file",
                                  hint="Name a .gguf file of the repo, or pull the whole repo with hf:ORG/REPO")
        if filename not in listing:
            raise PullSourceError(f"{source}: the repo has no file {filename!r} at revision {revision!r}",
                                  hint=f"Files there: {', '.join(sorted(listing)[:12]) or 'none'}")
        target = _target(home, "gguf", _gguf_name(name or PurePosixPath(filename).name))
        file = remote(filename, target.name, listing[filename])
        if expected is not None:
            file = RemoteFile(file.url, file.name, expected, "--sha256")
        return PullPlan(source, "gguf", target, (file,), headers)
    if expected is not None:
        raise PullSourceError("--sha256 checks one file; a model folder is checked against the hub's file list",
                              hint="Leave out --sha256, or pull one file with hf:ORG/REPO/FILE.gguf")
    chosen = folder_files(listing)
    if "config.json" not in chosen:
        raise PullSourceError(f"{source} is not a transformers model folder (no config.json at its top level)",
                              hint="Pull one of its .gguf files with hf:ORG/REPO/FILE.gguf, or another repo")
    target = _target(home, "llm", _plain_name(name or match["repo"]))
    return PullPlan(source, "folder", target, tuple(remote(p, p, listing[p]) for p in chosen), headers)


def folder_files(listing: Mapping[str, str | None]) -> list[str]:
    """Which files of a repo make the local model folder: the top level only, one weight format, no git files."""
    top = [path for path in listing if "/" not in path and not path.startswith(".")]
    if any(path.endswith(".safetensors") for path in top):
        top = [path for path in top if not path.lower().endswith(_OTHER_WEIGHTS)]
    return sorted(top)


def _hub_headers(environ: Mapping[str, str]) -> dict[str, str]:
    token = next((environ[v].strip() for v in HF_TOKEN_ENVS if environ.get(v, "").strip()), None)
    return {"Authorization": f"Bearer {token}"} if token else {}


def _hub_listing(client: httpx.Client, endpoint: str, repo: str, revision: str, headers: Mapping[str, str],
                 source: str) -> dict[str, str | None]:
    """The repo's files and, for large (LFS) files, their sha256, from the hub's API."""
    url = f"{endpoint}/api/models/{repo}/revision/{quote(revision, safe='')}"
    try:
        response = client.get(url, params={"blobs": "true"}, headers=headers)
    except httpx.HTTPError as exc:
        raise PullError(f"cannot reach {endpoint} ({exc})",
                        hint=f"Check the network, or set ${HF_ENDPOINT_ENV} to a reachable mirror") from None
    _raise_for_status(response, source)
    try:
        siblings = response.json()["siblings"]
        return {entry["rfilename"]: _lfs_sha256(entry) for entry in siblings}
    except (ValueError, KeyError, TypeError):
        raise PullError(f"{url} did not answer with a hub file list",
                        hint=f"Check that ${HF_ENDPOINT_ENV} points at a Hugging Face compatible hub") from None


def _lfs_sha256(entry: Mapping[str, object]) -> str | None:
    lfs = entry.get("lfs")
    digest = lfs.get("sha256") if isinstance(lfs, Mapping) else None
    return digest.lower() if isinstance(digest, str) and _SHA256.match(digest.lower()) else None


def _gguf_name(name: str) -> str:
    name = _plain_name(name)
    return name if name.lower().endswith(".gguf") else f"{name}.gguf"


def _plain_name(name: str) -> str:
    """A single path component: a name must not reach outside models/ or hide (leading dot) its target."""
    name = name.strip()
    if not name or name.startswith(".") or "/" in name or "\\" in name or name.endswith(".part"):
        raise PullSourceError(f"{name!r} cannot be a model name",
                              hint="Use a plain name such as my-model, without slashes or a leading dot")
    return name


def _target(home: Home, kind: Literal["gguf", "llm"], name: str) -> Path:
    base = home.models / kind
    return home.confine(base, name)


# --- downloading -------------------------------------------------------------------------------------------------

def _pull_file(fetch: _Fetcher, remote: RemoteFile, target: Path) -> PulledFile:
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    pulled = fetch.download(remote, part)
    os.replace(part, target)
    return pulled


def _pull_folder(fetch: _Fetcher, plan: PullPlan) -> tuple[PulledFile, ...]:
    """Every file into a hidden staging folder (kept across runs for resume), then one rename into place."""
    staging = plan.target.with_name(f".{plan.target.name}.pull")
    pulled = []
    for remote in plan.files:
        final = staging / remote.name
        if final.is_file():  # finished (and verified) by an earlier, interrupted run
            pulled.append(PulledFile(remote.name, final.stat().st_size, "", "earlier run", 0))
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(final.name + ".part")
        pulled.append(fetch.download(remote, part))
        os.replace(part, final)
    _swap_into_place(staging, plan.target)
    return tuple(pulled)


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an existing target (a forced pull) is moved aside first, then removed."""
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


class _Incomplete(Exception):
    """The body ended early (or the server would not resume): worth another attempt from the `.part` file."""


@dataclass
class _Fetcher:
    client: httpx.Client
    headers: Mapping[str, str]
    progress: PullProgress
    attempts: int

    def download(self, remote: RemoteFile, part: Path) -> PulledFile:
        """Fetch `remote` into `part`, resuming and retrying; verified against the expected sha256 if any."""
        first_offset = _size(part)
        problem: Exception | None = None
        for _ in range(self.attempts):
            try:
                digest, header_sha = self._attempt(remote, part)
                break
            except (httpx.TransportError, _Incomplete) as exc:
                problem = exc
        else:
            raise PullError(f"downloading {remote.url} failed {self.attempts} times, last: "
                            f"{_describe(problem)}; {_size(part)} bytes are kept in {part}")
        expected, verified_by = _expected(remote, header_sha)
        if expected is not None and digest != expected:
            part.unlink(missing_ok=True)
            raise PullError(f"the sha256 of {remote.name} is {digest}, but {verified_by} says {expected}; "
                            "the download was deleted",
                            hint="Check the --sha256 value; if it is right, the server sent a different or "
                                 "corrupt file: try again later or from another source")
        return PulledFile(remote.name, _size(part), digest, verified_by, first_offset)

    def _attempt(self, remote: RemoteFile, part: Path) -> tuple[str, str | None]:
        have = _size(part)
        headers = {**self.headers, **({"Range": f"bytes={have}-"} if have else {})}
        with self.client.stream("GET", remote.url, headers=headers) as response:
            if response.status_code == 416 and have:
                return self._already_complete(response, remote.name, part)
            _raise_for_status(response, remote.url)
            have = _resume_offset(response, have)
            total = _total_size(response, have)
            digest = _hash_file(part, have)
            self.progress.start(remote.name, total, have)
            with part.open("r+b" if have else "wb") as out:
                out.seek(have)
                out.truncate()
                for block in response.iter_bytes():  # as received: a chunker would lose its buffer on a drop
                    out.write(block)
                    digest.update(block)
                    self.progress.advance(remote.name, len(block))
            if total is not None and _size(part) != total:
                raise _Incomplete(f"got {_size(part)} of {total} bytes")
            self.progress.finish(remote.name)
            return digest.hexdigest(), _linked_etag(response)

    def _already_complete(self, response: httpx.Response, name: str, part: Path) -> tuple[str, str | None]:
        """416 to `Range: bytes=N-` means N is past the end: the part is whole if N is exactly the size."""
        total = _content_range_total(response.headers.get("content-range", ""))
        if total != _size(part):
            part.unlink(missing_ok=True)
            raise _Incomplete("the server refused to resume; starting over")
        self.progress.start(name, total, total)
        self.progress.finish(name)
        return _hash_file(part, total).hexdigest(), _linked_etag(response)


def _expected(remote: RemoteFile, header_sha: str | None) -> tuple[str | None, str]:
    if remote.sha256 is not None:
        return remote.sha256, remote.sha256_source
    if header_sha is not None:
        return header_sha, "X-Linked-Etag"
    return None, ""


def _resume_offset(response: httpx.Response, have: int) -> int:
    """Where the body starts in the file: `have` for a 206 that continues it, 0 when the server sent it all."""
    if response.status_code != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("content-range", ""))
    if match is None or int(match[1]) != have:
        raise _Incomplete(f"the server resumed at an unexpected place ({response.headers.get('content-range')})")
    return have


def _total_size(response: httpx.Response, offset: int) -> int | None:
    total = _content_range_total(response.headers.get("content-range", ""))
    if total is not None:
        return total
    length = response.headers.get("content-length")
    return offset + int(length) if length and length.isdigit() else None


def _content_range_total(value: str) -> int | None:
    match = re.search(r"/(\d+)\s*$", value)
    return int(match[1]) if match else None


def _linked_etag(response: httpx.Response) -> str | None:
    """A sha256 in `X-Linked-Etag` on the answer or a redirect before it (the hub puts it on the redirect)."""
    for hop in (*response.history, response):
        value = hop.headers.get("x-linked-etag", "").strip().removeprefix("W/").strip('"').lower()
        if _SHA256.match(value):
            return value
    return None


def _hash_file(path: Path, length: int) -> Any:
    """sha256 of the first `length` bytes already on disk, so a resumed download is still checked whole."""
    digest = hashlib.sha256()
    if length:
        with path.open("rb") as stream:
            for block in _blocks(stream.read, length):
                digest.update(block)
    return digest


def _blocks(read: Callable[[int], bytes], length: int) -> Iterable[bytes]:
    left = length
    while left > 0 and (block := read(min(left, 1 << 20))):
        left -= len(block)
        yield block


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if status < 400:
        return
    if status == 404:
        raise PullSourceError(f"{what} was not found", status=404,
                              hint="Check the URL or the ORG/REPO name and revision")
    if status in (401, 403):
        raise PullError(f"{what} needs permission", status=status,
                        hint=f"The model may be gated or private: accept its terms on the hub and set "
                             f"${HF_TOKEN_ENVS[1]} (or ${HF_TOKEN_ENVS[0]}) to a token with access")
    raise PullError(f"{what} could not be downloaded", status=status)


def _describe(problem: Exception | None) -> str:
    text = str(problem) or type(problem).__name__
    return text[:200]
