"""Fixtures for the scanner and policy tests: the corpus, a home with the corpus OSV records imported."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from partyflow.config import Home

CORPUS = Path(__file__).parent / "corpus"
_EXPECTATIONS = tomllib.loads((CORPUS / "expected.toml").read_text())
EXPECTED: dict[str, str] = _EXPECTATIONS["malicious"]
BENIGN_EXPECTED: dict[str, list[str]] = _EXPECTATIONS["benign"]
MALICIOUS = sorted(EXPECTED)
BENIGN = sorted(p.name for p in (CORPUS / "benign").iterdir() if p.is_dir())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PARTYFLOW_SECURITY_LEVEL", "PARTYFLOW_MANAGER_SECURITY_LEVEL", "PARTYFLOW_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    home.root.mkdir(parents=True)
    return home


@pytest.fixture(scope="session")
def vuln_home(tmp_path_factory: pytest.TempPathFactory) -> Home:
    from partyflow.security.scanner import import_osv

    home = Home(tmp_path_factory.mktemp("vulnhome") / "home")
    home.root.mkdir(parents=True)
    import_osv(CORPUS / "osv", home)
    return home
