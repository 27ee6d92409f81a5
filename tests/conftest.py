from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from partyflow import Engine

DATA = Path(__file__).parent / "data"


def install_pack(home: Path, name: str) -> Path:
    target = home / "custom_nodes" / name
    shutil.copytree(DATA / "packs" / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def pack_module(engine: Engine, class_type: str) -> ModuleType:
    """The module a pack's class came from (each engine imports its own copy of a pack)."""
    return sys.modules[engine.registry.entry(class_type).cls.__module__]


@pytest.fixture
def semantics(tmp_path: Path) -> Iterator[tuple[Engine, ModuleType]]:
    home = tmp_path / "home"
    install_pack(home, "semantics")
    engine = Engine(home=home, builtin_packs=())
    yield engine, pack_module(engine, "Const")
    engine.close()
