"""Homes wired to the scripted loopback OpenAI server, and the workflow nodes that talk to it.

Many test modules need the same pieces: a scripted OpenAI-compatible server on 127.0.0.1 (running for a module
or session, reset before each test), a home whose config.toml has `[providers.NAME]` tables pointing at it, an
engine on that home, and the APIModelLoader -> LLMChat nodes of a prompt. They are written once here so that a
change to the config format, the server's lifecycle or a node's inputs is made in one place.

The fixture factories return pytest fixtures to assign at module level under the name tests ask for:

    running_server = running_server_fixture()
    server = fresh_server_fixture()
    engine = engine_fixture()
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from tests.support.openai_server import OpenAIServer

from partyflow import Engine

Scope = Literal["function", "module", "session"]
TomlValue = str | int | float | bool


# --- fixtures --------------------------------------------------------------------------------------------------

def running_server_fixture(name: str = "running_server", scope: Scope = "module") -> Any:
    """A fixture named `name` that keeps one loopback server running for `scope` (starting one per test is slow)."""

    @pytest.fixture(scope=scope, name=name)
    def running() -> Iterator[OpenAIServer]:
        with OpenAIServer() as server:
            yield server

    return running


def fresh_server_fixture(name: str = "server", running: str = "running_server", *,
                         check_failures: bool = False) -> Any:
    """A fixture named `name`: the `running` server with no script or recorded requests left by an earlier test.

    With `check_failures`, it is reset again afterwards and the test fails if the server's handlers raised.
    """

    @pytest.fixture(name=name)
    def fresh(request: pytest.FixtureRequest) -> Iterator[OpenAIServer]:
        server: OpenAIServer = request.getfixturevalue(running)
        server.reset()
        yield server
        if check_failures:
            server.reset()
            assert not server.failures

    return fresh


def engine_fixture(scope: Scope = "function", **options: Any) -> Any:
    """A fixture `engine` on the `home` fixture's folder, without custom node packs unless `options` say so,
    closed after use."""

    @pytest.fixture(scope=scope, name="engine")
    def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
        yield from engine_on(request.getfixturevalue("home"), **options)

    return engine


def engine_on(home: Path, **options: Any) -> Iterator[Engine]:
    """An engine on `home` for a fixture to yield from; `options` go to `Engine` (no custom nodes by default)."""
    engine = Engine(home=home, **{"load_custom_nodes": False, **options})
    yield engine
    engine.close()


# --- config.toml -----------------------------------------------------------------------------------------------

def openai_table(name: str, base_url: str, *, model: str = "tiny-chat", key_env: str | None = None,
                 max_retries: int | None = 0, timeout: int | None = 20, **fields: TomlValue) -> str:
    """A `[providers.NAME]` table for an openai_compat provider at `base_url`; by default it never retries (a
    scripted error must reach the test, not be retried away). None leaves a key out (the provider's default);
    `fields` add more keys, such as `cache=True`."""
    values: dict[str, TomlValue | None] = {"type": "openai_compat", "base_url": base_url, "api_key_env": key_env,
                                           "model": model, **fields, "max_retries": max_retries,
                                           "timeout": timeout}
    lines = [f"{key} = {_toml(value)}" for key, value in values.items() if value is not None]
    return "\n".join([f"[providers.{name}]", *lines]) + "\n"


def write_config(home: Path, *tables: str) -> Path:
    """Write `tables` as the home's config.toml, creating the home folder; returns `home`."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text("\n".join(tables), encoding="utf-8")
    return home


def _toml(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # a JSON string is a TOML basic string; numbers are spelled alike


# --- workflow nodes --------------------------------------------------------------------------------------------

def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    """One node of an API-format prompt."""
    return {"class_type": class_type, "inputs": inputs}


def loader(provider: str = "loop", model: str = "") -> dict[str, Any]:
    """An APIModelLoader for a configured provider (its default model unless `model` names one)."""
    return node("APIModelLoader", provider=provider, model=model)


def chat(user: str, system: str = "", **inputs: Any) -> dict[str, Any]:
    """An LLMChat on the prompt's "model" node."""
    return node("LLMChat", model=["model", 0], system_prompt=system, user_prompt=user, **inputs)
