"""Fixtures for catalog-built bundles: wheels tagged for several platforms on a real PEP 503 index served on
127.0.0.1, real git repositories and archives, a maker home with a signing key and an air-gapped target home."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.manager_catalog.helpers import make_pack, make_venv, serve

from partyflow.config import Home
from partyflow.manager.keys import Keyring

LINUX = "manylinux2014_x86_64"


def make_tagged_wheel(directory: Path, name: str, version: str, tag: str, requires: tuple[str, ...] = ()) -> Path:
    """A valid wheel (METADATA, WHEEL, RECORD) tagged `tag` (e.g. py3-none-win_amd64), one module inside."""
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    pure = tag.endswith("-any")
    files = {
        f"{module}/__init__.py": f"VERSION = {version!r}\nTAG = {tag!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist}/WHEEL": f"Wheel-Version: 1.0\nGenerator: partyflow-tests\nRoot-Is-Purelib: {str(pure).lower()}\n"
                         f"Tag: {tag}\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{module}-{version}-{tag}.whl"
    import zipfile

    with zipfile.ZipFile(target, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return target


@dataclass
class Index:
    """A PEP 503 simple index (and an /archives/ folder) on 127.0.0.1; `requests` records every path asked."""

    url: str
    root: Path
    requests: list[str] = field(default_factory=list)

    @property
    def simple(self) -> str:
        return f"{self.url}/simple/"

    def fetched(self, suffix: str) -> int:
        return sum(1 for r in self.requests if r.endswith(suffix))


def _simple_pages(files: Path) -> dict[str, bytes]:
    """/simple/ and /simple/<project>/ pages for the wheels in `files`, links carrying #sha256=."""
    from packaging.utils import canonicalize_name, parse_wheel_filename

    projects: dict[str, list[Path]] = {}
    for wheel in sorted(files.glob("*.whl")):
        projects.setdefault(str(canonicalize_name(parse_wheel_filename(wheel.name)[0])), []).append(wheel)
    pages = {"/simple/": ("<!DOCTYPE html><html><body>" + "".join(
        f'<a href="/simple/{p}/">{p}</a>' for p in sorted(projects)) + "</body></html>").encode()}
    for project, wheels in projects.items():
        links = "".join(f'<a href="/files/{html.escape(w.name)}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
                        f"{html.escape(w.name)}</a><br>" for w in wheels)
        pages[f"/simple/{project}/"] = f"<!DOCTYPE html><html><body>{links}</body></html>".encode()
    return pages


def serve_index(root: Path) -> Iterator[Index]:
    """Serve `root/files/*.whl` as a simple index and `root/archives/*` as plain files."""
    pages = _simple_pages(root / "files")

    def route(raw: str) -> tuple[int, str, bytes] | None:
        path = raw.split("?", 1)[0]
        page = pages.get(path) or pages.get(path.rstrip("/") + "/")
        if page is not None:
            return 200, "text/html", page
        if path.startswith(("/files/", "/archives/")) and "/.." not in path:
            local = root / path.lstrip("/")
            if local.is_file():
                return 200, "application/octet-stream", local.read_bytes()
        return None

    with serve(route) as served:
        yield Index(url=served.url, root=root, requests=served.requests)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[Index]:
    """Wheels: pfb-nativelib for Linux and for Windows, pfb-purelib and pfb-extralib for any platform,
    pfb-winonly only for Windows, pfb-maconly only for macOS; and a pack archive under /archives/."""
    root = tmp_path / "index"
    files = root / "files"
    make_tagged_wheel(files, "pfb-nativelib", "1.0", f"py3-none-{LINUX}")
    make_tagged_wheel(files, "pfb-nativelib", "1.0", "py3-none-win_amd64")
    make_tagged_wheel(files, "pfb-purelib", "1.0", "py3-none-any")
    make_tagged_wheel(files, "pfb-extralib", "2.0", "py3-none-any", ("pfb-purelib>=1",))
    make_tagged_wheel(files, "pfb-winonly", "1.0", "py3-none-win_amd64")
    make_tagged_wheel(files, "pfb-maconly", "1.0", "py3-none-macosx_11_0_arm64")
    archives = root / "archives"
    archives.mkdir(parents=True)
    src = tmp_path / "archive-src"
    make_pack(src, "zippack", ("pfb-purelib",))
    with tarfile.open(archives / "zippack-1.0.tar.gz", "w:gz") as tar:
        tar.add(src / "zippack", arcname="zippack-1.0")
    yield from serve_index(root)


@pytest.fixture
def gitpack(tmp_path: Path) -> Path:
    """A real git repository with a pack that needs pfb-nativelib, tagged v1.0."""
    repo = tmp_path / "repos" / "gitpack"
    make_pack(repo.parent, "gitpack", ("pfb-nativelib",))
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    git("tag", "v1.0", cwd=repo)
    return repo


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def maker(tmp_path: Path) -> Home:
    home = Home(tmp_path / "maker").ensure()
    Keyring(home).generate("release")
    return home


@pytest.fixture
def target(tmp_path: Path, maker: Home) -> tuple[Home, str]:
    """The air-gapped machine: its own venv, no index, trusts the maker's key."""
    venv = make_venv(tmp_path / "venv")
    home = Home(tmp_path / "target").ensure()
    home.config_file.write_text(f"[manager]\npython = {json.dumps(venv)}\nno_index = true\n", encoding="utf-8")
    Keyring(home).trust(Keyring(maker).export("release"))
    return home, venv


@pytest.fixture(autouse=True)
def _uv_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "uv-cache"))
