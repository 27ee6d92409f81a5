"""`partyflow.llm.pull` against a real loopback HTTP server: resume, checksums, hub folders, errors."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.file_server import FileServer

from partyflow.config import Home
from partyflow.llm.pull import HF_ENDPOINT_ENV, PullError, PullSourceError, folder_files, pull

GGUF = b"GGUF" + bytes(range(256)) * 64  # 16 KiB and a bit: several blocks, distinct bytes
WEIGHTS = os.urandom(50_000)
REPO_FILES = {"config.json": b'{"model_type": "llama"}', "tokenizer.json": b"{}",
              "tokenizer_config.json": b"{}", "model.safetensors": WEIGHTS, "pytorch_model.bin": b"old weights",
              ".gitattributes": b"*.safetensors filter=lfs", "onnx/model.onnx": b"onnx"}


@pytest.fixture(scope="module")
def running() -> Iterator[FileServer]:
    with FileServer() as server:
        yield server


@pytest.fixture
def server(running: FileServer) -> FileServer:
    running.requests.clear()
    running.honour_range = True
    return running


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home").ensure()


def env(server: FileServer) -> dict[str, str]:
    return {HF_ENDPOINT_ENV: server.url}


class Recorder:
    """A `PullProgress` that remembers what it was told."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, int | None, int]] = []
        self.advanced = 0
        self.finished: list[str] = []

    def start(self, name: str, total: int | None, done: int) -> None:
        self.starts.append((name, total, done))

    def advance(self, name: str, nbytes: int) -> None:
        self.advanced += nbytes

    def finish(self, name: str) -> None:
        self.finished.append(name)


def test_a_gguf_url_lands_in_models_gguf_checked_by_its_sidecar(server: FileServer, home: Home) -> None:
    url = server.add("/files/tiny-q4.gguf", GGUF)
    server.add("/files/tiny-q4.gguf.sha256", f"{hashlib.sha256(GGUF).hexdigest()}  tiny-q4.gguf\n".encode())
    progress = Recorder()
    result = pull(url, home, progress=progress, environ={})
    target = home.models / "gguf" / "tiny-q4.gguf"
    assert result.target == target and target.read_bytes() == GGUF
    assert result.kind == "gguf" and result.verified and result.files[0].verified_by == "sidecar"
    assert progress.starts == [("tiny-q4.gguf", len(GGUF), 0)] and progress.advanced == len(GGUF)
    assert progress.finished == ["tiny-q4.gguf"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny-q4.gguf"]  # no .part left behind


def test_no_checksum_anywhere_is_kept_and_reported_unverified(server: FileServer, home: Home) -> None:
    url = server.add("/files/plain.gguf", GGUF)
    result = pull(url, home, name="renamed", environ={})
    assert result.target.name == "renamed.gguf" and result.target.read_bytes() == GGUF
    assert not result.verified and result.files[0].sha256 == hashlib.sha256(GGUF).hexdigest()


def test_a_dropped_connection_is_resumed_with_a_range_request(server: FileServer, home: Home) -> None:
    url = server.add("/files/drop.gguf", GGUF)
    server.drop("/files/drop.gguf", after=5000, times=2)
    progress = Recorder()
    result = pull(url, home, sha256=hashlib.sha256(GGUF).hexdigest(), progress=progress, environ={})
    assert result.target.read_bytes() == GGUF and result.files[0].verified_by == "--sha256"
    ranges = [r.headers.get("range") for r in server.seen("/files/drop.gguf")]
    assert ranges == [None, "bytes=5000-", "bytes=10000-"]
    assert [done for _, _, done in progress.starts] == [0, 5000, 10000]


def test_an_interrupted_pull_resumes_in_the_next_run(server: FileServer, home: Home) -> None:
    url = server.add("/files/later.gguf", GGUF)
    server.drop("/files/later.gguf", after=7000)
    with pytest.raises(PullError, match="failed 1 times") as failed:
        pull(url, home, attempts=1, environ={})
    part = home.models / "gguf" / "later.gguf.part"
    assert "run the same command again" in str(failed.value).lower() and part.stat().st_size == 7000
    assert not (home.models / "gguf" / "later.gguf").exists()

    result = pull(url, home, sha256=hashlib.sha256(GGUF).hexdigest(), environ={})
    assert result.files[0].resumed_from == 7000 and result.target.read_bytes() == GGUF and not part.exists()
    assert server.seen("/files/later.gguf")[-1].headers["range"] == "bytes=7000-"


def test_a_server_that_ignores_ranges_restarts_the_file(server: FileServer, home: Home) -> None:
    url = server.add("/files/norange.gguf", GGUF)
    (home.models / "gguf" / "norange.gguf.part").write_bytes(b"stale bytes from somewhere else")
    server.honour_range = False
    result = pull(url, home, sha256=hashlib.sha256(GGUF).hexdigest(), environ={})
    assert result.target.read_bytes() == GGUF


def test_a_complete_part_file_is_finished_without_downloading_again(server: FileServer, home: Home) -> None:
    url = server.add("/files/whole.gguf", GGUF)
    (home.models / "gguf" / "whole.gguf.part").write_bytes(GGUF)
    result = pull(url, home, sha256=hashlib.sha256(GGUF).hexdigest(), environ={})
    assert result.target.read_bytes() == GGUF
    assert server.seen("/files/whole.gguf")[-1].headers["range"] == f"bytes={len(GGUF)}-"


def test_a_wrong_checksum_deletes_the_download(server: FileServer, home: Home) -> None:
    url = server.add("/files/bad.gguf", GGUF, headers={"X-Linked-Etag": '"' + "ab" * 32 + '"'})
    with pytest.raises(PullError, match="X-Linked-Etag says abab") as failed:
        pull(url, home, environ={})
    assert "the download was deleted" in str(failed.value)
    assert list((home.models / "gguf").iterdir()) == []


def test_a_wrong_sha256_option_is_refused_after_download(server: FileServer, home: Home) -> None:
    url = server.add("/files/opt.gguf", GGUF)
    with pytest.raises(PullError, match="--sha256 says 0000"):
        pull(url, home, sha256="0" * 64, environ={})
    assert list((home.models / "gguf").iterdir()) == []


def test_404_is_a_clear_error_and_leaves_nothing(server: FileServer, home: Home) -> None:
    with pytest.raises(PullSourceError, match=r"was not found \(HTTP 404\)"):
        pull(server.url + "/files/missing.gguf", home, environ={})
    assert list((home.models / "gguf").iterdir()) == []


def test_an_existing_model_is_kept_unless_forced(server: FileServer, home: Home) -> None:
    url = server.add("/files/again.gguf", GGUF)
    (home.models / "gguf" / "again.gguf").write_bytes(b"mine")
    assert pull(url, home, environ={}).skipped
    assert (home.models / "gguf" / "again.gguf").read_bytes() == b"mine"
    assert pull(url, home, force=True, environ={}).target.read_bytes() == GGUF


def test_a_hub_repo_becomes_a_model_folder(server: FileServer, home: Home) -> None:
    server.add_repo("acme/tiny-chat", REPO_FILES, lfs={"model.safetensors"})
    progress = Recorder()
    result = pull("hf:acme/tiny-chat", home, progress=progress, environ=env(server))
    target = home.models / "llm" / "tiny-chat"
    assert result.kind == "folder" and result.target == target
    assert sorted(p.name for p in target.iterdir()) == [
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert (target / "model.safetensors").read_bytes() == WEIGHTS
    by_name = {f.name: f for f in result.files}
    assert by_name["model.safetensors"].verified_by == "hub file list"
    assert sorted(p.name for p in (home.models / "llm").iterdir()) == ["tiny-chat"]  # no staging folder left
    listing = server.seen("/api/models/acme/tiny-chat/revision/main")[0]
    assert "blobs=true" in listing.path


def test_a_gguf_file_of_a_hub_repo_is_checked_by_x_linked_etag_on_the_redirect(server: FileServer,
                                                                              home: Home) -> None:
    server.add_repo("acme/tiny-gguf", {"tiny.Q8_0.gguf": GGUF, "README.md": b"hi"}, revision="v1",
                    wrong_etag=())
    # a listing without lfs entries: the checksum must come from the redirect's header
    listing = server.listings["/api/models/acme/tiny-gguf/revision/v1"]
    digest = hashlib.sha256(GGUF).hexdigest()
    server.headers["/acme/tiny-gguf/resolve/v1/tiny.Q8_0.gguf"]["X-Linked-Etag"] = f'"{digest}"'
    assert all("lfs" not in entry for entry in listing["siblings"])
    result = pull("hf:acme/tiny-gguf@v1/tiny.Q8_0.gguf", home, name="tiny", environ=env(server))
    assert result.target == home.models / "gguf" / "tiny.gguf" and result.target.read_bytes() == GGUF
    assert result.files[0].verified_by == "X-Linked-Etag"


def test_a_hub_file_with_a_wrong_linked_etag_is_refused(server: FileServer, home: Home) -> None:
    server.add_repo("acme/broken", {"m.gguf": GGUF}, wrong_etag={"m.gguf"})
    with pytest.raises(PullError, match="sha256 of m.gguf"):
        pull("hf:acme/broken/m.gguf", home, environ=env(server))
    assert list((home.models / "gguf").iterdir()) == []


def test_a_hub_token_is_sent_to_the_hub(server: FileServer, home: Home) -> None:
    server.add_repo("acme/gated", {"g.gguf": GGUF})
    pull("hf:acme/gated/g.gguf", home, environ={**env(server), "HF_TOKEN": "hf_secret"})
    assert server.seen("/api/models/acme/gated/revision/main")[0].headers["authorization"] == "Bearer hf_secret"


def test_a_folder_interrupted_midway_keeps_finished_files(server: FileServer, home: Home) -> None:
    server.add_repo("acme/halfway", REPO_FILES, lfs={"model.safetensors"})
    blob = f"/blobs/acme/halfway/{hashlib.sha256(WEIGHTS).hexdigest()}"
    server.drop(blob, after=20_000)
    with pytest.raises(PullError):
        pull("hf:acme/halfway", home, attempts=1, environ=env(server))
    staging = home.models / "llm" / ".halfway.pull"
    assert (staging / "config.json").is_file() and (staging / "model.safetensors.part").stat().st_size == 20_000
    assert not (home.models / "llm" / "halfway").exists()
    result = pull("hf:acme/halfway", home, environ=env(server))
    assert (result.target / "model.safetensors").read_bytes() == WEIGHTS and not staging.exists()
    assert server.seen(blob)[-1].headers["range"] == "bytes=20000-"


@pytest.mark.parametrize(("source", "message"), [
    ("ftp://example.com/x.gguf", "not an http"),
    ("hf:just-a-name", "is not hf:ORG/REPO"),
    ("https://example.com/model.bin", "does not name a .gguf file"),
])
def test_sources_that_cannot_be_pulled(source: str, message: str, home: Home) -> None:
    with pytest.raises(PullSourceError, match=message):
        pull(source, home, environ={})


def test_bad_names_and_checksums_are_refused_before_downloading(server: FileServer, home: Home) -> None:
    url = server.add("/files/n.gguf", GGUF)
    for name in ("../escape", ".hidden", "a/b"):
        with pytest.raises(PullSourceError, match="cannot be a model name"):
            pull(url, home, name=name, environ={})
    with pytest.raises(PullSourceError, match="64 hexadecimal"):
        pull(url, home, sha256="abc", environ={})
    assert server.seen("/files/n.gguf") == []


def test_a_repo_without_config_is_not_a_model_folder(server: FileServer, home: Home) -> None:
    server.add_repo("acme/only-gguf", {"a.gguf": GGUF})
    with pytest.raises(PullSourceError, match="not a transformers model folder"):
        pull("hf:acme/only-gguf", home, environ=env(server))
    with pytest.raises(PullSourceError, match="no file 'b.gguf'"):
        pull("hf:acme/only-gguf/b.gguf", home, environ=env(server))
    with pytest.raises(PullSourceError, match=r"not found \(HTTP 404\)"):
        pull("hf:acme/no-such-repo", home, environ=env(server))


def test_folder_files_keep_one_weight_format_at_the_top_level() -> None:
    listing = {name: None for name in REPO_FILES}
    assert folder_files(listing) == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert "pytorch_model.bin" in folder_files({"config.json": None, "pytorch_model.bin": None})
