"""The Python API as the README shows it: Engine(home=...), run, submit (front and priority), drain, events."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from partyflow import Engine
from partyflow.engine.engine import PromptValidationError
from partyflow.engine.events import Event

EXAMPLES = Path(__file__).parents[2] / "examples"


def greeting(name: str) -> dict:
    return {"name": {"class_type": "TextValue", "inputs": {"value": name}},
            "show": {"class_type": "DisplayText", "inputs": {"text": ["name", 0]}}}


@pytest.fixture
def engine(tmp_path: Path):
    with Engine(home=tmp_path / "home", builtin_packs=("core",)) as engine:
        yield engine


def test_run_a_file_and_read_outputs_as_in_history(engine: Engine) -> None:
    result = engine.run(EXAMPLES / "hello.json")
    assert result.ok and result.outputs["show"] == {"text": ["Hello, world! Welcome to partyflow."]}
    assert set(result.timings) == set(result.executed)


def test_an_invalid_prompt_raises_with_comfyui_shaped_errors(engine: Engine) -> None:
    with pytest.raises(PromptValidationError) as raised:
        engine.run({"show": {"class_type": "DisplayText", "inputs": {"text": ["missing", 0]}}})
    assert raised.value.result.to_json()["node_errors"]["show"]["errors"][0]["type"] == "bad_linked_input"


def test_submitted_prompts_run_by_priority_then_front_then_order(engine: Engine) -> None:
    engine.submit(greeting("first"), prompt_id="first")
    engine.submit(greeting("second"), prompt_id="second")
    engine.submit(greeting("urgent"), prompt_id="urgent", front=True)
    engine.submit(greeting("top"), prompt_id="top", number=-100)

    results = asyncio.run(engine.drain())

    assert [r.prompt_id for r in results] == ["top", "urgent", "first", "second"]
    history = engine.queue.history()
    assert history["urgent"]["outputs"]["show"] == {"text": ["urgent"]}
    assert history["second"]["status"]["completed"] is True


def test_events_reach_subscribers_and_per_run_sinks(engine: Engine) -> None:
    everything: list[Event] = []
    unsubscribe = engine.subscribe(everything.append)
    this_run: list[Event] = []

    engine.run(greeting("events"), sinks=[this_run.append])
    unsubscribe()
    engine.run(greeting("unheard"))

    kinds = [e.type for e in this_run]
    assert kinds[0] == "execution_start" and kinds[-1] == "execution_success"
    assert {"executing", "executed"} <= set(kinds)
    assert [e.type for e in everything] == kinds  # the subscriber heard the first run only


def test_events_is_an_async_iterator_over_every_prompt(engine: Engine) -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []
        async with engine.events() as stream:  # subscribed from here on
            await engine.run_async(greeting("events"))
            async for event in stream:
                seen.append(event.type)
                if event.type == "execution_success":
                    break
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] == "execution_start" and seen[-1] == "execution_success"
    assert "executing" in seen and "executed" in seen


def test_repeated_sync_runs_share_one_event_loop_and_close_cleanly(tmp_path: Path) -> None:
    engine = Engine(home=tmp_path / "home2", builtin_packs=("core",))
    assert engine.run(greeting("a")).ok and engine.run(greeting("b")).ok
    assert engine.run(greeting("b")).cached == ["show"]
    engine.close()
    assert engine._runner is None
