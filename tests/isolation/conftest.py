"""Fixtures for isolated packs: a wheelhouse with two versions of one tiny library, a home that installs offline
from it, and a stand-in "host environment" venv so no test touches partyflow's own virtual environment."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.manager_catalog.helpers import make_venv, make_wheel

from partyflow.config import Home
from partyflow.manager.packs import PackManager


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("isolation-wheels")
    make_wheel(where, "tinylib", "1.0")
    make_wheel(where, "tinylib", "2.0")
    return where


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One uv cache for the session outside the user's; no stray PARTYFLOW_* settings."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "uv-cache"))
    for name in ("PARTYFLOW_HOME", "PARTYFLOW_SECURITY_LEVEL", "PARTYFLOW_MANAGER_PAUSE_AT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def host_python(tmp_path: Path) -> str:
    """The environment non-isolated packs install into (`[manager] python`), instead of partyflow's own."""
    return make_venv(tmp_path / "host-env")


@pytest.fixture
def home(tmp_path: Path, wheelhouse: Path, host_python: str) -> Home:
    home = Home(tmp_path / "home").ensure()
    home.config_file.write_text(
        f'[manager]\nno_index = true\nfind_links = ["{wheelhouse}"]\npython = "{host_python}"\n', encoding="utf-8")
    return home


@pytest.fixture
def manager(home: Home) -> PackManager:
    return PackManager(home, verify_timeout=30)


@pytest.fixture
def host_site(host_python: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make the stand-in host environment importable in this process (what partyflow's venv is in real use)."""
    site = next(Path(host_python).parent.parent.glob("lib/python*/site-packages"))
    monkeypatch.syspath_prepend(str(site))
    yield
    for name in [n for n in sys.modules if n == "tinylib" or n.startswith("tinylib.")]:
        del sys.modules[name]
