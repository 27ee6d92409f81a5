"""`partyflow models pull` as users run it: a subprocess against a loopback file server in this process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.file_server import FileServer

GGUF = b"GGUF" + bytes(range(256)) * 40


@pytest.fixture(scope="module")
def server() -> Iterator[FileServer]:
    with FileServer() as running:
        yield running


def partyflow(*args: str, home: Path, server: FileServer) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PARTYFLOW_HOME", "HF_TOKEN", "PARTYFLOW_HF_TOKEN")}
    env |= {"PARTYFLOW_HF_ENDPOINT": server.url, "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "partyflow", "--home", str(home), "models", "pull", *args],
                          capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_pull_a_gguf_url_with_a_checksum(server: FileServer, tmp_path: Path) -> None:
    url = server.add("/cli/tiny.gguf", GGUF)
    digest = hashlib.sha256(GGUF).hexdigest()
    done = partyflow(url, "--sha256", digest, home=tmp_path, server=server)
    assert done.returncode == 0, done.stderr
    target = tmp_path / "models" / "gguf" / "tiny.gguf"
    assert target.read_bytes() == GGUF
    assert "pulled" in done.stdout and "sha256 verified" in done.stdout and "tiny.gguf" in done.stdout

    again = partyflow(url, home=tmp_path, server=server)
    assert again.returncode == 0 and "already there" in again.stdout


def test_pull_a_hub_folder_as_json(server: FileServer, tmp_path: Path) -> None:
    server.add_repo("cli/tiny", {"config.json": b"{}", "model.safetensors": GGUF}, lfs={"model.safetensors"})
    done = partyflow("hf:cli/tiny", "--name", "mine", "--json", home=tmp_path, server=server)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["kind"] == "folder" and result["path"] == str(tmp_path / "models" / "llm" / "mine")
    assert {f["name"]: f["verified_by"] for f in result["files"]} == {"config.json": None,
                                                                       "model.safetensors": "hub file list"}


def test_failures_are_one_line_with_an_exit_code(server: FileServer, tmp_path: Path) -> None:
    missing = partyflow(server.url + "/cli/none.gguf", home=tmp_path, server=server)
    assert missing.returncode == 2 and "was not found (HTTP 404)" in missing.stderr

    url = server.add("/cli/bad.gguf", GGUF)
    wrong = partyflow(url, "--sha256", "1" * 64, home=tmp_path, server=server)
    assert wrong.returncode == 1 and "the download was deleted" in wrong.stderr
    assert not list((tmp_path / "models" / "gguf").iterdir())

    bad = partyflow("s3://bucket/x.gguf", home=tmp_path, server=server)
    assert bad.returncode == 2 and "not an http(s) URL" in bad.stderr
    assert bad.stderr.startswith("pull failed:")  # refused before any download: no progress display at all
