"""Fixtures for the offline tests: a home with a signing key, a target venv, tiny wheels and packs, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.manager_catalog.helpers import make_pack, make_venv, make_wheel

from partyflow.config import Home
from partyflow.manager.keys import Keyring

ROOT = Path(__file__).resolve().parents[2]
_SCRUB = ("PARTYFLOW_HOME", "PARTYFLOW_MANAGER_SECURITY_LEVEL", "PARTYFLOW_MANAGER_PAUSE_AT")


@pytest.fixture(autouse=True)
def _uv_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One uv cache for the session, outside the user's: tests neither read nor fill ~/.cache/uv."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "uv-cache"))


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where `bundle create` downloads from (no index): a small tree of pure-Python wheels."""
    where = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(where, "alpha", "1.0")
    make_wheel(where, "alpha", "2.0")
    make_wheel(where, "beta", "1.0", ("alpha<2",))
    make_wheel(where, "gamma", "1.0")
    return where


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    """Pack folders: `one` needs beta (and so alpha<2), `two` needs nothing, `three` needs gamma."""
    src = tmp_path / "src"
    make_pack(src, "one", ("beta",))
    make_pack(src, "two")
    make_pack(src, "three", ("gamma",))
    return src


def configure(home: Home, **manager: Any) -> None:
    """Write the home's `[manager]` table (strings, booleans and lists of strings)."""
    lines = ["[manager]"]
    for key, value in manager.items():
        lines.append(f"{key} = {json.dumps(value)}")
    home.config_file.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def venv(tmp_path: Path) -> str:
    """The interpreter packs' dependencies go into, so tests never touch the environment running them."""
    return make_venv(tmp_path / "venv")


@pytest.fixture
def maker(tmp_path: Path, wheelhouse: Path) -> Home:
    """The connected machine: a home with the signing key 'release' that downloads from the wheelhouse."""
    home = Home(tmp_path / "maker").ensure()
    configure(home, no_index=True, find_links=[str(wheelhouse)])
    Keyring(home).generate("release")
    return home


@pytest.fixture
def target(tmp_path: Path, maker: Home, venv: str) -> Home:
    """The air-gapped machine: trusts 'release', installs into `venv`, and has no wheel source of its own."""
    home = Home(tmp_path / "target").ensure()
    configure(home, python=venv, no_index=True)
    Keyring(home).trust(Keyring(maker).export("release"))
    return home


def cli(*args: str, home: Home, env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = ("-m", "partyflow")) -> subprocess.CompletedProcess[str]:
    """`python -m partyflow ARGS --home HOME` in a real subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    full_env.update(env or {})
    return subprocess.run([sys.executable, *prefix, *args, "--home", str(home.root)], capture_output=True,
                          text=True, env=full_env, cwd=ROOT, timeout=120)


def cli_json(*args: str, home: Home, code: int = 0) -> Any:
    done = cli(*args, "--json", home=home)
    assert done.returncode == code, done.stderr + done.stdout
    return json.loads(done.stdout)


@pytest.fixture
def make_bundle(maker: Home, sources: Path, tmp_path: Path) -> Callable[..., Path]:
    """Create a bundle through the Python API (fast); the CLI path has its own test."""
    from partyflow.manager.bundles import create_bundle

    def build(*names: str, out: str = "b.pfb", **options: Any) -> Path:
        return create_bundle(maker, tmp_path / out, packs=[str(sources / n) for n in names or ("one", "two")],
                             **options).path
    return build


__all__ = ["ROOT", "cli", "cli_json", "configure", "make_pack", "make_wheel"]
