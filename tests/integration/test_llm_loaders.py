"""Local Model Loader and GGUF Model Loader through a real engine, with the tiny offline transformers model."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
import transformers  # noqa: F401  the local extra is part of the test install
from tests.support.providers import chat as llm_chat
from tests.support.providers import engine_fixture, node
from tests.support.tiny_model import TinyModelSpec, build_tiny_model  # noqa: E402

from partyflow import Engine  # noqa: E402
from partyflow.nodes.host import host_context  # noqa: E402


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = tmp_path_factory.mktemp("loaders") / "home"
    build_tiny_model(home / "models" / "llm" / "tiny", TinyModelSpec(seed=0))
    broken = home / "models" / "llm" / "broken"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    gguf = home / "models" / "gguf"
    gguf.mkdir(parents=True)
    (gguf / "tiny.gguf").write_bytes(b"GGUF" + bytes(64))
    (gguf / "half.gguf.part").write_bytes(b"GGUF")
    return home


engine = engine_fixture(scope="module")


def chat(user: str, **inputs: Any) -> dict[str, Any]:
    return llm_chat(user, system="Answer briefly.", temperature=1.0, seed=5, max_tokens=8, **inputs)


def test_local_loader_chat_display_runs_the_tiny_model(engine: Engine) -> None:
    prompt = {"model": node("LocalModelLoader", folder="tiny", device="cpu", dtype="float32"),
              "chat": chat("Hello, how are you?"),
              "show": node("DisplayText", text=["chat", 0])}
    result = engine.run(prompt)
    assert result.ok, result.error
    text = result.output("chat")
    assert isinstance(text, str) and text and result.outputs["show"] == {"text": [text]}
    usage = result.output("chat", 3)
    assert usage["provider"] == "local:tiny" and usage["model"] == "tiny"
    assert usage["completion_tokens"] >= 1 and usage["prompt_tokens"] > 5
    history = result.output("chat", 1)
    assert history[-1]["role"] == "assistant" and history[-1]["content"] == text


def test_the_model_is_loaded_once_and_shared_by_chat_nodes(engine: Engine) -> None:
    prompt = {"model": node("LocalModelLoader", folder="tiny"),
              "a": chat("first", stream=False), "b": chat("second"),
              "show": node("DisplayText", text=["b", 0]), "show_a": node("DisplayText", text=["a", 0])}
    result = engine.run(prompt)
    assert result.ok, result.error
    handle = result.output("model")
    assert handle.live is not None and handle.live.model() is handle.live.model()
    copy = pickle.loads(pickle.dumps(handle))
    assert copy.live is None and copy == handle


def test_an_unpickled_handle_loads_the_model_for_the_call(engine: Engine, home: Path) -> None:
    import asyncio

    from partyflow.builtin_nodes.llm.chat import Chat

    result = engine.run({"model": node("LocalModelLoader", folder="tiny"), "c": chat("Hello"),
                         "show": node("DisplayText", text=["c", 0])})
    assert result.ok, result.error
    copy = pickle.loads(pickle.dumps(result.output("model")))
    with host_context(engine.host):
        text, *_ = asyncio.run(Chat().chat(copy, "Answer briefly.", "Hello", temperature=1.0, seed=5,
                                           max_tokens=8, stream=False))
    assert text == result.output("c")


def test_loader_lists_model_folders_and_gguf_files(engine: Engine) -> None:
    info = engine.object_info()
    assert info["LocalModelLoader"]["input"]["required"]["folder"][0] == ["broken", "tiny"]
    assert info["GGUFModelLoader"]["input"]["required"]["gguf_file"][0] == ["tiny.gguf"]
    assert info["LocalModelLoader"]["output"] == info["APIModelLoader"]["output"] == ["LLM_MODEL"]


def test_a_missing_folder_is_refused_with_what_to_do(engine: Engine) -> None:
    check = engine.validate({"model": node("LocalModelLoader", folder="nope"), "c": chat("hi"),
                             "show": node("DisplayText", text=["c", 0])})
    assert not check.ok
    assert "no model 'nope' under models/llm/ (found: broken, tiny)" in str(check.node_errors)
    assert "partyflow models pull" in str(check.node_errors)


def test_a_folder_that_is_not_a_model_fails_on_the_loader(engine: Engine) -> None:
    result = engine.run({"model": node("LocalModelLoader", folder="broken"), "c": chat("hi"),
                         "show": node("DisplayText", text=["c", 0])})
    assert not result.ok and result.error.node_id == "model"
    assert "cannot load the model in" in result.error.message and "broken" in result.error.message


def test_gguf_loader_names_the_extra_when_llama_cpp_is_missing(engine: Engine,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if the gguf extra were not installed
    result = engine.run({"model": node("GGUFModelLoader", gguf_file="tiny.gguf", n_ctx=512, threads=2),
                         "c": chat("hi"), "show": node("DisplayText", text=["c", 0])})
    assert not result.ok and result.error.node_id == "model"
    assert "pip install 'partyflow[gguf]'" in result.error.message


def test_gguf_loader_settings_reach_the_llamacpp_provider(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from partyflow.builtin_nodes.llm import local
    from partyflow.builtin_nodes.llm.sockets import LocalModelSpec, ModelHandle

    monkeypatch.setattr(local, "_installed", lambda module: True)
    spec = LocalModelSpec("llamacpp", str(engine.home.models / "gguf" / "tiny.gguf"),
                          (("n_ctx", 1024), ("n_threads", 3)))
    with host_context(engine.host):
        provider = local.create_local(ModelHandle("gguf:tiny.gguf", None, spec))
    assert type(provider).__name__ == "LlamaCppProvider"
    assert provider.config.n_ctx == 1024 and provider.config.n_threads == 3


def test_gguf_loader_chat_display_runs_a_tiny_gguf(tmp_path: Path) -> None:
    from tests.support.tiny_gguf import build_tiny_gguf

    home = tmp_path / "home"
    build_tiny_gguf(home / "models" / "gguf" / "tiny.gguf", source=tmp_path / "source")
    engine = Engine(home=home, load_custom_nodes=False)
    try:
        result = engine.run({"model": node("GGUFModelLoader", gguf_file="tiny.gguf", n_ctx=256, threads=1),
                             "chat": chat("Hello, how are you?"), "show": node("DisplayText", text=["chat", 0])})
    finally:
        engine.close()
    assert result.ok, result.error
    usage = result.output("chat", 3)
    assert usage["provider"] == "gguf:tiny.gguf" and usage["completion_tokens"] >= 1
    assert result.outputs["show"] == {"text": [result.output("chat")]}
