"""Sources: folders, single files, zip and tar archives (including hostile ones), and git at tags/branches/commits."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from tests.manager.helpers import GitRemote, pack_version, write_pack

from partyflow.manager.archives import ArchiveError, ArchiveLimits, extract_archive
from partyflow.manager.errors import ManagerError
from partyflow.manager.gitsource import GitError
from partyflow.manager.sources import (
    SourceError,
    SourceSpec,
    default_name,
    fetch,
    spec_from_text,
    split_version,
)


def make_zip(path: Path, members: dict[str, str | bytes], *, links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def make_tar(path: Path, members: dict[str, str | bytes], *, special: list[tarfile.TarInfo] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
        for info in special or []:
            tf.addfile(info)
    return path


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


INIT = "NODE_CLASS_MAPPINGS = {}\n"


# --- naming sources ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("pack@1.2.0", ("pack", "1.2.0")),
    ("https://github.com/o/r.git@v1", ("https://github.com/o/r.git", "v1")),
    ("https://user@host.example/o/r", ("https://user@host.example/o/r", None)),
    ("git@github.com:o/r.git", ("git@github.com:o/r.git", None)),
    ("git@github.com:o/r.git@main", ("git@github.com:o/r.git", "main")),
    ("plain", ("plain", None)),
])
def test_split_version(text: str, expected: tuple[str, str | None]) -> None:
    assert split_version(text) == expected


def test_spec_from_text_kinds(tmp_path: Path, git_remote: GitRemote) -> None:
    folder = write_pack(tmp_path / "folder")
    single = tmp_path / "single.py"
    single.write_text(INIT)
    archive = make_zip(tmp_path / "pack-1.0.zip", {"__init__.py": INIT})
    assert spec_from_text(str(folder)) == SourceSpec("dir", str(folder))
    assert spec_from_text(str(single)).kind == "dir"
    assert spec_from_text(str(archive)) == SourceSpec("archive", str(archive))
    assert spec_from_text(f"{git_remote.bare}@v1.0") == SourceSpec("git", str(git_remote.bare), "v1.0")
    assert spec_from_text("https://example.invalid/o/repo").kind == "git"
    assert spec_from_text("https://example.invalid/dl/pack.zip").kind == "url"
    assert spec_from_text("git@github.com:o/r.git@v2") == SourceSpec("git", "git@github.com:o/r.git", "v2")
    assert spec_from_text("some-catalog-name") is None
    assert default_name(SourceSpec("archive", str(archive))) == "pack-1.0"
    assert default_name(SourceSpec("git", "git@github.com:o/Repo.git")) == "Repo"
    with pytest.raises(SourceError, match="no such file"):
        spec_from_text(str(tmp_path / "missing" / "x.zip"))
    with pytest.raises(SourceError, match="only applies to git"):
        spec_from_text(f"{folder}@v1")
    with pytest.raises(ManagerError, match="not a usable pack name"):
        default_name(SourceSpec("dir", "/x", name="../evil"))


# --- folders, files, archives --------------------------------------------------------------------------------

def test_fetch_folder_and_single_file(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "src" / "folderpack", files={"sub/data.txt": "x"})
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    work = tmp_path / "work"
    work.mkdir()
    fetched = fetch(SourceSpec("dir", str(folder)), work)
    assert fetched.path == work / "folderpack" and (fetched.path / "sub" / "data.txt").read_text() == "x"
    assert not (fetched.path / "__pycache__").exists()
    single = tmp_path / "src" / "one.py"
    single.write_text(INIT)
    assert fetch(SourceSpec("dir", str(single)), work).path == work / "one.py"


def test_fetch_folder_with_link_outside_is_refused(tmp_path: Path) -> None:
    folder = write_pack(tmp_path / "src" / "linky")
    (folder / "secret").symlink_to("/etc/passwd")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(SourceError, match="points outside"):
        fetch(SourceSpec("dir", str(folder)), work)


@pytest.mark.parametrize("maker", ["zip", "tar"])
def test_archive_with_top_folder_is_unwrapped_and_hash_checked(tmp_path: Path, maker: str) -> None:
    members = {"mypack-main/__init__.py": INIT, "mypack-main/lib/util.py": "X = 1\n"}
    archive = (make_zip(tmp_path / "a.zip", members) if maker == "zip" else make_tar(tmp_path / "a.tar.gz", members))
    work = tmp_path / "work"
    work.mkdir()
    fetched = fetch(SourceSpec("archive", str(archive), version="1.0", name="mypack"), work)
    assert fetched.path == work / "mypack"
    assert (fetched.path / "lib" / "util.py").read_text() == "X = 1\n"
    assert fetched.archive_sha256 and len(fetched.archive_sha256) == 64
    assert not (work / ".extract").exists()
    again = tmp_path / "again"
    again.mkdir()
    fetch(SourceSpec("archive", str(archive), sha256=fetched.archive_sha256.upper(), name="mypack"), again)
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    with pytest.raises(SourceError, match="sha256 mismatch"):
        fetch(SourceSpec("archive", str(archive), sha256="0" * 64, name="mypack"), wrong)


def test_corrupt_archive_gives_a_clear_error(tmp_path: Path) -> None:
    good = make_zip(tmp_path / "good.zip", {"__init__.py": INIT * 200})
    broken = tmp_path / "broken.zip"
    data = bytearray(good.read_bytes())
    data[40:80] = b"\xff" * 40  # damage the compressed member, keep the central directory
    broken.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="corrupt|cannot extract"):
        extract_archive(broken, tmp_path / "out1")
    not_archive = tmp_path / "notes.zip"
    not_archive.write_text("hello")
    with pytest.raises(ArchiveError, match="not a zip or tar archive"):
        extract_archive(not_archive, tmp_path / "out2")
    truncated = tmp_path / "trunc.tar.gz"
    make_tar(tmp_path / "full.tar.gz", {"__init__.py": INIT * 500})
    truncated.write_bytes((tmp_path / "full.tar.gz").read_bytes()[:60])
    with pytest.raises(ArchiveError):
        extract_archive(truncated, tmp_path / "out3")
    assert not any((tmp_path / f"out{i}").exists() for i in (1, 2, 3))


HOSTILE_ZIPS = {
    "zip-slip": ({"../evil.py": "x"}, None, "zip-slip"),
    "absolute": ({"/tmp/evil.py": "x"}, None, "absolute path"),
    "windows-slip": ({"a\\..\\..\\evil.py": "x"}, None, "zip-slip"),
    "symlink out": ({"__init__.py": INIT}, {"passwd": "../../../../etc/passwd"}, "points outside"),
    "absolute symlink": ({"__init__.py": INIT}, {"passwd": "/etc/passwd"}, "absolute"),
}


@pytest.mark.parametrize("case", list(HOSTILE_ZIPS))
def test_hostile_zip_is_refused_and_nothing_escapes(tmp_path: Path, case: str) -> None:
    members, links, message = HOSTILE_ZIPS[case]
    archive = make_zip(tmp_path / "bad.zip", members, links=links)
    dest = tmp_path / "deep" / "er" / "out"
    with pytest.raises(ArchiveError, match=message):
        extract_archive(archive, dest)
    assert not dest.exists()
    assert not (tmp_path / "deep" / "evil.py").exists() and not (tmp_path / "deep" / "er" / "evil.py").exists()


HOSTILE_TARS = {
    "zip-slip": ({"../evil.py": "x"}, [], "zip-slip"),
    "absolute": ({"/tmp/evil.py": "x"}, [], "absolute path"),
    "symlink out": ({"__init__.py": INIT}, [link("up", "../..")], "points outside"),
    "symlink chain": ({"__init__.py": INIT}, [link("d/b", ".."), link("a", "d/b/..")], "points outside"),
    "hardlink out": ({"__init__.py": INIT}, [link("h", "../../etc/passwd", tarfile.LNKTYPE)], "zip-slip"),
    "hardlink to nothing": ({"__init__.py": INIT}, [link("h", "nothing", tarfile.LNKTYPE)], "not a file"),
    "device": ({"__init__.py": INIT}, [link("dev", "", tarfile.CHRTYPE)], "device"),
}


@pytest.mark.parametrize("case", list(HOSTILE_TARS))
def test_hostile_tar_is_refused(tmp_path: Path, case: str) -> None:
    members, special, message = HOSTILE_TARS[case]
    archive = make_tar(tmp_path / "bad.tar.gz", members, special=special)
    dest = tmp_path / "deep" / "out"
    with pytest.raises(ArchiveError, match=message):
        extract_archive(archive, dest)
    assert not dest.exists()


@pytest.mark.parametrize("second", [link("d/evil.txt", "payload", tarfile.LNKTYPE), link("d/evil-link", "payload")],
                         ids=["hardlink", "symlink"])
def test_a_link_cannot_carry_a_later_member_out_of_the_pack(tmp_path: Path, second: tarfile.TarInfo) -> None:
    """`d -> ..` then `d/evil.txt`: the second link must not be written through the first, outside the pack."""
    archive = make_tar(tmp_path / "bad.tar.gz", {"payload": "pwned"}, special=[link("d", ".."), second])
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError):
        extract_archive(archive, dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz"]


def test_links_inside_the_pack_are_kept(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "ok.tar.gz", {"__init__.py": INIT, "data/a.txt": "A"},
                       special=[link("alias.txt", "data/a.txt"), link("copy.txt", "data/a.txt", tarfile.LNKTYPE)])
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "alias.txt").is_symlink() and (tmp_path / "out" / "alias.txt").read_text() == "A"
    assert not (tmp_path / "out" / "copy.txt").is_symlink() and (tmp_path / "out" / "copy.txt").read_text() == "A"


def test_archive_limits(tmp_path: Path) -> None:
    many = make_zip(tmp_path / "many.zip", {f"f{i}.py": "" for i in range(20)})
    with pytest.raises(ArchiveError, match="more than 10 members"):
        extract_archive(many, tmp_path / "o1", ArchiveLimits(max_files=10))
    bomb = make_zip(tmp_path / "bomb.zip", {"big.bin": b"\0" * 200_000})  # compresses to a few hundred bytes
    assert bomb.stat().st_size < 5_000
    with pytest.raises(ArchiveError, match="more than 100000 bytes"):
        extract_archive(bomb, tmp_path / "o2", ArchiveLimits(max_bytes=100_000))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


# --- git -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version, expected, kind", [
    (None, "2", "branch"), ("v1.0", "1", "tag"), ("dev", "3", "branch"), ("commit:1", "1", "commit"),
])
def test_git_clone_at_version(tmp_path: Path, git_remote: GitRemote, version: str | None, expected: str,
                              kind: str) -> None:
    if version and version.startswith("commit:"):
        version = git_remote.commits[version.split(":")[1]]
    work = tmp_path / "stage"
    work.mkdir()
    fetched = fetch(SourceSpec("git", str(git_remote.bare), version), work)
    assert fetched.path == work / "remotepack"
    assert pack_version(fetched.path) == expected
    assert fetched.commit == git_remote.commits[expected]
    assert fetched.ref_kind == kind
    assert fetched.version == (version if version else "main")


def test_git_unknown_version_and_unreachable_remote(tmp_path: Path, git_remote: GitRemote) -> None:
    work = tmp_path / "stage"
    work.mkdir()
    with pytest.raises(GitError, match="no branch, tag or commit 'v9'"):
        fetch(SourceSpec("git", str(git_remote.bare), "v9"), work)
    other = tmp_path / "stage2"
    other.mkdir()
    with pytest.raises(GitError, match="git clone failed"):
        fetch(SourceSpec("git", str(tmp_path / "nowhere.git")), other)


def test_url_sources_over_loopback_http(tmp_path: Path) -> None:
    import functools
    import hashlib
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "served"
    served.mkdir()
    archive = make_zip(served / "webpack-1.2.zip", {"webpack/__init__.py": INIT})
    (served / "tool.py").write_text(INIT)
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            """No request log in the test output."""

    handler = functools.partial(Quiet, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        spec = spec_from_text(f"{base}/webpack-1.2.zip@1.2")
        assert spec == SourceSpec("url", f"{base}/webpack-1.2.zip", "1.2")
        work = tmp_path / "w1"
        work.mkdir()
        fetched = fetch(SourceSpec("url", spec.location, "1.2", digest, "webpack"), work)
        assert (fetched.path / "__init__.py").is_file() and fetched.archive_sha256 == digest
        assert not (work / ".download").exists()
        work2 = tmp_path / "w2"
        work2.mkdir()
        assert fetch(SourceSpec("url", f"{base}/tool.py"), work2).path == work2 / "tool.py"
        work3 = tmp_path / "w3"
        work3.mkdir()
        with pytest.raises(SourceError, match="cannot download"):
            fetch(SourceSpec("url", f"{base}/missing.zip"), work3)
    finally:
        server.shutdown()
        server.server_close()


def test_remote_callers_never_get_a_plain_name_read_as_a_local_folder(tmp_path: Path) -> None:
    (tmp_path / "popular-pack").mkdir()
    assert spec_from_text("popular-pack", cwd=tmp_path).kind == "dir"  # a local admin's CLI: the folder wins
    assert spec_from_text("popular-pack", cwd=tmp_path, bare_names_are_paths=False) is None  # a catalog name
