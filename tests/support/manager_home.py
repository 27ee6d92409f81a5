"""A home whose pack manager installs offline from a test wheelhouse into a stand-in venv, for the test folders
that install real packs (compliance, isolation).

Such tests must neither read nor fill the user's uv cache, nor pick up PARTYFLOW_* settings from the shell
that runs them, and must never install into partyflow's own environment; these helpers keep that in one place.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from partyflow.config import Home

SCRUBBED_ENV = ("PARTYFLOW_HOME", "PARTYFLOW_SECURITY_LEVEL", "PARTYFLOW_MANAGER_PAUSE_AT")


def isolate_manager_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """One uv cache for the session outside the user's; no stray PARTYFLOW_* settings (call from an autouse
    fixture)."""
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "uv-cache"))
    for name in SCRUBBED_ENV:
        monkeypatch.delenv(name, raising=False)


def offline_manager_home(path: Path, wheelhouse: Path, python: str, extra: str = "") -> Home:
    """A home at `path` whose `[manager]` installs from `wheelhouse` only (no index) into the venv of `python`;
    `extra` is appended to its config.toml."""
    home = Home(path).ensure()
    home.config_file.write_text(
        f'[manager]\nno_index = true\nfind_links = ["{wheelhouse}"]\npython = "{python}"\n{extra}', encoding="utf-8")
    return home
