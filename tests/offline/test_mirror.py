"""A mirror built from bundles, served on 127.0.0.1 by `partyflow mirror serve` in a subprocess, used by a home's
normal `nodes install NAME` (signed catalog + index_url) and by stock pip and uv."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.manager_catalog.helpers import make_venv

from partyflow.config import Home
from partyflow.manager.dependencies import find_uv, installed_packages
from partyflow.manager.keys import Keyring
from partyflow.manager.packs import PackManager

from .conftest import ROOT, cli, cli_json, configure


@pytest.fixture
def served(tmp_path: Path, maker: Home, make_bundle) -> Iterator[tuple[str, Path]]:
    """Build the mirror with the CLI from two bundles, then serve it; yields (base URL, folder)."""
    mirror = tmp_path / "mirror"
    first, second = make_bundle("one", "two", out="a.pfb"), make_bundle("three", out="b.pfb")
    built = cli_json("mirror", "build", str(mirror), "--bundle", str(first), "--bundle", str(second),
                     "--key", "release", home=maker)
    assert sorted(p.split()[0] for p in built["packs_added"]) == ["one", "three", "two"]
    again = cli_json("mirror", "build", str(mirror), "--bundle", str(first), "--key", "release", home=maker)
    assert again["packs_added"] == [] and again["wheels_added"] == []  # building again adds nothing new
    env = {k: v for k, v in os.environ.items() if k != "PARTYFLOW_HOME"}
    server = subprocess.Popen([sys.executable, "-m", "partyflow", "mirror", "serve", str(mirror), "--port", "0"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the socket is bound: no sleeping
        assert line.startswith("serving "), line + server.stderr.read() if server.poll() is not None else line
        yield line.split(" at ", 1)[1].strip(), mirror
    finally:
        server.terminate()
        server.communicate(timeout=30)  # reaps it and closes the pipes


def test_nodes_install_from_the_mirror(served, tmp_path: Path, maker: Home, venv: str) -> None:
    url, mirror = served
    assert url.startswith("http://127.0.0.1:")
    home = Home(tmp_path / "lan").ensure()
    configure(home, python=venv, index_url=f"{url}simple/", require_signed_catalogs=True)
    home.config_file.write_text(home.config_file.read_text() + f'channels = [{{name = "lan", url = "{url}"}}]\n')
    Keyring(home).trust(Keyring(maker).export("release"))

    done = cli("nodes", "install", "one", "--json", home=home, env={"UV_CACHE_DIR": str(tmp_path / "uvc")})
    assert done.returncode == 0, done.stderr + done.stdout
    record = PackManager(home).info("one").record
    assert record is not None and record.catalog == "one" and record.source.location.startswith(url)
    assert installed_packages(venv)["beta"] == "1.0" and installed_packages(venv)["alpha"] == "1.0"

    with urllib.request.urlopen(f"{url}simple/beta/", timeout=10) as response:
        listing = response.read().decode()
    assert 'href="../../wheels/beta-1.0-py3-none-any.whl#sha256=' in listing
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{url}wheels/", timeout=10)  # no directory listings
    assert missing.value.code == 404
    missing.value.close()


def test_pip_and_uv_install_from_the_mirror(served, tmp_path: Path, maker: Home) -> None:
    url, mirror = served
    dest = tmp_path / "downloads"
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
                           "--index-url", f"{url}simple/", "--dest", str(dest), "beta"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"]
    original = (mirror / "wheels" / "beta-1.0-py3-none-any.whl").read_bytes()
    assert hashlib.sha256((dest / "beta-1.0-py3-none-any.whl").read_bytes()).digest() == \
        hashlib.sha256(original).digest()

    uv = find_uv()
    assert uv is not None
    python = make_venv(tmp_path / "uvenv")
    done = subprocess.run([uv, "pip", "install", "--python", python, "--index-url", f"{url}simple/", "gamma"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert installed_packages(python)["gamma"] == "1.0"

    # a machine whose channel and index are the mirror bundles a pack by its catalog name
    relay = Home(tmp_path / "relay").ensure()
    configure(relay, index_url=f"{url}simple/")
    relay.config_file.write_text(relay.config_file.read_text() + f'channels = [{{name = "lan", url = "{url}"}}]\n')
    Keyring(relay).generate("relay")
    Keyring(relay).trust(Keyring(maker).export("release"))  # the mirror's catalog is signed
    made = cli_json("bundle", "create", "--packs", "one", "-o", str(tmp_path / "relay.pfb"), home=relay)
    assert [p["name"] for p in made["packs"]] == ["one"] and sorted(made["wheels"]) == ["alpha==1.0", "beta==1.0"]

    catalog = json.loads((mirror / "custom-node-list.json").read_text())
    assert catalog["signature"].startswith("ed25519:") and all(e["signature"] for e in catalog["custom_nodes"])
    assert all(not e["files"][0].startswith("http") for e in catalog["custom_nodes"])  # relative: movable
