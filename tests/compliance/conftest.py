"""Fixtures for the compliance report and backup tests: a home with managed, disabled and hand-copied packs, a
config with a secret, user files and an audit log; dependencies go to a stand-in venv, never partyflow's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.manager_catalog.helpers import make_venv, make_wheel
from tests.support.manager_home import isolate_manager_env, offline_manager_home

from partyflow.config import Home
from partyflow.manager.packs import PackManager

SECRET = "sk-test-5ecret-never-print-me"

PACK = '''
class Hello:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}
    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "test"
    def run(self):
        return ("hi",)

NODE_CLASS_MAPPINGS = {"%s": Hello}
'''


def write_pack(root: Path, name: str, requirement: str | None = None) -> Path:
    pack = root / name
    pack.mkdir(parents=True, exist_ok=True)
    (pack / "__init__.py").write_text(PACK % f"{name}Hello", encoding="utf-8")
    if requirement:
        (pack / "requirements.txt").write_text(requirement + "\n", encoding="utf-8")
    return pack


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("compliance-wheels")
    make_wheel(where, "tinylib", "1.0")
    return where


@pytest.fixture(autouse=True)
def _clean_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_manager_env(tmp_path_factory, monkeypatch)


@pytest.fixture
def home(tmp_path: Path, wheelhouse: Path) -> Home:
    home = offline_manager_home(tmp_path / "home", wheelhouse, make_venv(tmp_path / "host-env"),
                                f'\n[providers.openai]\napi_key = "{SECRET}"\n')
    home.config_file.chmod(0o600)
    return home


@pytest.fixture
def populated(tmp_path: Path, home: Home) -> Home:
    """alpha (with a requirement), beta (then disabled), a hand-copied pack, user files and a model file."""
    manager = PackManager(home, verify_timeout=30)
    manager.install(str(write_pack(tmp_path / "src", "alpha", "tinylib==1.0")))
    manager.install(str(write_pack(tmp_path / "src", "beta")))
    manager.disable("beta")
    write_pack(home.custom_nodes, "handmade")
    (home.user / "default" / "workflows").mkdir(parents=True)
    (home.user / "default" / "workflows" / "flow.json").write_text('{"1": {}}', encoding="utf-8")
    (home.user / "default" / "comfy.settings.json").write_text('{"theme": "dark"}', encoding="utf-8")
    (home.models / "llm" / "big.gguf").write_bytes(b"model weights")
    return home
