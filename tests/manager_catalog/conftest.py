from __future__ import annotations

from pathlib import Path

import pytest

from partyflow.config import Home

from .helpers import make_wheel

DATA = Path(__file__).parent / "data"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home").ensure()


def write_config(home: Home, text: str) -> None:
    home.config_file.write_text(text, encoding="utf-8")


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny wheels: a small dependency tree, two versions of some, and a fake numpy for protection tests."""
    where = tmp_path_factory.mktemp("wheelhouse")
    make_wheel(where, "alpha", "1.0")
    make_wheel(where, "alpha", "2.0")
    make_wheel(where, "beta", "1.0", ("alpha<2",))
    make_wheel(where, "gamma", "1.0", ("delta>=1",))
    make_wheel(where, "delta", "1.5")
    make_wheel(where, "numpy", "0.9")
    make_wheel(where, "numpy", "1.0")
    make_wheel(where, "needs-old-numpy", "1.0", ("numpy<1",))
    return where


@pytest.fixture(autouse=True)
def _uv_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One uv cache for the session, outside the user's, so tests neither read nor fill ~/.cache/uv."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "uv-cache"))
