"""Fixtures for isolated packs: a wheelhouse with two versions of one tiny library, a home that installs offline
from it, and a stand-in "host environment" venv so no test touches partyflow's own virtual environment."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.manager_catalog.helpers import make_venv, make_wheel
from tests.support.manager_home import isolate_manager_env, offline_manager_home

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
    isolate_manager_env(tmp_path_factory, monkeypatch)


@pytest.fixture
def host_python(tmp_path: Path) -> str:
    """The environment non-isolated packs install into (`[manager] python`), instead of partyflow's own."""
    return make_venv(tmp_path / "host-env")


@pytest.fixture
def home(tmp_path: Path, wheelhouse: Path, host_python: str) -> Home:
    return offline_manager_home(tmp_path / "home", wheelhouse, host_python)


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
