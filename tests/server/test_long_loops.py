"""A 10,000-pass loop over the WebSocket: every message stays small and the traffic grows linearly (issue 11, item 2).

Before, each pass made expanded ids 12 characters longer, so 1,000 passes sent 30 MB and 3,000 dropped the socket.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from tests.server.live import LiveServer, run

PASSES = 10_000


def countdown(passes: int) -> dict[str, Any]:
    """A while loop counting `passes` down to zero; the counter is the only loop value, so nothing else grows."""
    return {
        "start": {"class_type": "IntValue", "inputs": {"value": passes}},
        "zero": {"class_type": "IntValue", "inputs": {"value": 0}},
        "open": {"class_type": "WhileLoopOpen", "inputs": {"value_1": ["start", 0]}},
        "next": {"class_type": "IntMath", "inputs": {"a": ["open", 1], "operation": "subtract", "b": 1}},
        "again": {"class_type": "CompareValues", "inputs": {"a": ["next", 0], "operation": ">", "b": ["zero", 0]}},
        "close": {"class_type": "WhileLoopClose", "inputs": {"flow_control": ["open", 0], "condition": ["again", 0],
                                                             "max_iterations": passes + 1, "value_1": ["next", 0]}},
        "show": {"class_type": "DisplayValue", "inputs": {"value": ["close", 0]}},
    }


def test_a_10000_pass_loop_sends_bounded_messages(server: LiveServer) -> None:
    async def scenario() -> tuple[list[int], list[dict[str, Any]]]:
        sizes: list[int] = []
        kept: list[dict[str, Any]] = []
        async with server.session() as http, http.ws_connect(server.ws_url("loop")) as ws:
            await ws.receive_json()
            body = await (await http.post("/prompt", json={"prompt": countdown(PASSES), "client_id": "loop"})).json()
            while True:
                msg = await ws.receive(timeout=120)
                assert msg.type == aiohttp.WSMsgType.TEXT, msg
                sizes.append(len(msg.data))
                message = json.loads(msg.data)
                if message["type"] != "executing" or message["data"]["node"] is not None:
                    if message["type"] not in ("executing", "progress_state", "status"):
                        kept.append(message)
                    continue
                if message["data"]["prompt_id"] == body["prompt_id"]:
                    kept.append(message)
                    return sizes, kept

    sizes, kept = run(scenario())
    shown = next(m["data"] for m in kept if m["type"] == "executed" and m["data"]["node"] == "show")
    assert shown["output"] == {"text": ["0"]}
    assert [m["type"] for m in kept][-2:] == ["execution_success", "executing"]
    print(f"{len(sizes)} messages, {sum(sizes)} bytes, largest {max(sizes)}")
    assert max(sizes) < 2_000, max(sizes)  # no message grows with the passes
    # 50,000 node runs: the expanded nodes' messages are paced, so far fewer than one message per node run
    assert len(sizes) < PASSES, len(sizes)
    assert sum(sizes) < 2_000_000, sum(sizes)
