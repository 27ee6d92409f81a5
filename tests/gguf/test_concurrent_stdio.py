"""Concurrent llama.cpp chats leave the process's stdout and stderr alone (issue 18, item 4).

llama-cpp-python used to point descriptors 1 and 2 at /dev/null around loads; two loads at once left them there
for good, so `partyflow run` printed nothing and exited 0. These tests run two chats at once, in-process (with a
spy on `os.dup2` that sees any descriptor swap, whatever the thread timing) and through the CLI (whose printed
output is the user-visible symptom). The API Model Loader's `llamacpp` provider has only a `path`, no `model`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from tests.gguf.test_llamacpp import make, sampled
from tests.support.tiny_gguf import TinyGGUF

from partyflow.config import Home


def test_two_concurrent_loads_and_chats_never_swap_stdout_or_stderr(gguf_home: Home, tiny_gguf: TinyGGUF,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    swaps: list[int] = []
    real_dup2 = os.dup2

    def spy(fd: int, fd2: int, inheritable: bool = True) -> int:
        if fd2 in (1, 2):
            swaps.append(fd2)
        return real_dup2(fd, fd2, inheritable)

    monkeypatch.setattr(os, "dup2", spy)
    before = (os.fstat(1).st_ino, os.fstat(2).st_ino)
    providers = [make(gguf_home), make(gguf_home)]  # no manager: each loads its own copy, both at once
    start = threading.Barrier(2)
    texts: list[str] = []
    errors: list[BaseException] = []

    def chat(provider: Any) -> None:
        try:
            start.wait()
            texts.append(provider.chat(sampled()).text)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=chat, args=(p,)) for p in providers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(texts) == 2
    assert swaps == []
    assert (os.fstat(1).st_ino, os.fstat(2).st_ino) == before


def test_the_cli_prints_both_replies_of_two_concurrent_gguf_chats(tmp_path: Path, tiny_gguf: TinyGGUF) -> None:
    home = Home(tmp_path / "home").ensure()
    (home.models / "gguf").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tiny_gguf.gguf, home.models / "gguf" / "tiny.gguf")
    home.config_file.write_text('[providers.gguf]\ntype = "llamacpp"\npath = "tiny.gguf"\nn_ctx = 512\n'
                                'n_threads = 1\n', encoding="utf-8")  # no `model`: the file names it

    def chat(prompt: str, seed: int) -> dict[str, Any]:
        return {"class_type": "LLMChat", "inputs": {"model": ["m", 0], "system_prompt": "", "user_prompt": prompt,
                                                   "temperature": 1.0, "seed": seed, "max_tokens": 8}}

    workflow = {"m": {"class_type": "APIModelLoader", "inputs": {"provider": "gguf"}},
                "a": chat("Hello", 1), "b": chat("Hi there", 2),
                "show_a": {"class_type": "DisplayText", "inputs": {"text": ["a", 0]}},
                "show_b": {"class_type": "DisplayText", "inputs": {"text": ["b", 0]}},
                "show_usage": {"class_type": "DisplayText", "inputs": {"text": "both chats done"}}}
    path = tmp_path / "two_chats.json"
    path.write_text(json.dumps(workflow), encoding="utf-8")
    env = {**os.environ, "PARTYFLOW_HOME": str(home.root), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "partyflow", "run", str(path), "--json"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # empty if stdout had been left pointing at /dev/null
    assert result["status"] == "success"
    outputs = result["outputs"]
    assert outputs["show_usage"]["text"] == ["both chats done"]
    assert all(isinstance(outputs[node]["text"][0], str) for node in ("show_a", "show_b"))
