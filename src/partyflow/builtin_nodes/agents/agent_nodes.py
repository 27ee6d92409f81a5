"""The Agent node (run the tool-calling loop on a task), the Agent Profile node and Agent As Tool."""

from __future__ import annotations

import json
from typing import Any

from partyflow.agents import AgentResult, delegation_tool
from partyflow.llm import dump_messages, load_messages
from partyflow.memory import SessionMemory, SessionStore

from ..llm.chat import user_turn
from ..llm.images import DETAILS, image_parts
from .common import AGENT, CATEGORY, JSON, LLM_HISTORY, LLM_MODEL, TOOL, collect_tools, current_home
from .spec import AgentSpec, limits_from, step_reporter


def limit_inputs() -> dict[str, Any]:
    return {
        "max_steps": ("INT", {"default": 10, "min": 1, "max": 1000, "tooltip": "Most model calls in one run."}),
        "max_tokens": ("INT", {"default": 0, "min": 0, "max": 100_000_000,
                               "tooltip": "Stop once the run used this many tokens; 0: no limit."}),
        "max_cost": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e6, "step": 0.01,
                               "tooltip": "Stop once the run cost this much (needs prices in config.toml); 0: none."}),
        "timeout": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 86_400.0,
                              "tooltip": "Seconds for the whole run; 0: no limit."}),
        "tool_timeout": ("FLOAT", {"default": 60.0, "min": 0.0, "max": 86_400.0,
                                   "tooltip": "Seconds each tool call may take."}),
        "temperature": ("FLOAT", {"default": -1.0, "min": -1.0, "max": 2.0, "step": 0.05,
                                  "tooltip": "Sampling temperature; negative: the provider's default."}),
    }


def parse_schema(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the output schema is not valid JSON ({exc})") from None
    if not isinstance(schema, dict):
        raise ValueError("the output schema must be a JSON object (a JSON Schema)")
    return schema


def spec_from(model: Any, name: str, system_prompt: str, tools: Any, output_schema: str, max_steps: int,
              max_tokens: int, max_cost: float, timeout: float, tool_timeout: float, temperature: float,
              ) -> AgentSpec:
    return AgentSpec(model=model, name=name.strip() or "agent", system_prompt=system_prompt,
                     tools=tuple(collect_tools(tools)), output_schema=parse_schema(output_schema),
                     limits=limits_from(max_steps, max_tokens, max_cost, timeout, tool_timeout),
                     temperature=temperature if temperature >= 0 else None)


class AgentNode:
    DESCRIPTION = ("Give a model a task and tools: it calls tools (several at once when it asks for several) until "
                   "it answers or a limit is reached. With a session id, the conversation is remembered across runs.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", JSON, JSON, JSON, LLM_HISTORY)
    RETURN_NAMES = ("answer", "steps", "usage", "output", "history")
    OUTPUT_TOOLTIPS = (
        "The final answer (the last text written when a limit stopped the run).",
        "The run: stop reason, and per step the reply, tool calls, tool results, durations and usage.",
        "Tokens and cost of the whole run.",
        "The parsed structured answer when an output schema is set, else null.",
        "The conversation with this run appended.",
    )
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (LLM_MODEL, {"tooltip": "From a model loader node."}),
                "system_prompt": ("STRING", {"default": "You are a helpful assistant.", "multiline": True}),
                "task": ("STRING", {"default": "", "multiline": True, "tooltip": "What to do: the user's turn."}),
            },
            "optional": {
                "tools": (TOOL, {"tooltip": "Tools from tool nodes, Workflow As Tool or Agent As Tool."}),
                "session_id": ("STRING", {"default": "", "tooltip": "Remember the conversation under this id "
                                                                    "(in the home's state.sqlite); empty: none."}),
                "memory_window": ("INT", {"default": 20, "min": 0, "max": 10_000,
                                          "tooltip": "Most remembered messages sent along; 0: all."}),
                "history": (LLM_HISTORY, {"tooltip": "Earlier messages, e.g. from Load Memory or a Chat node."}),
                "output_schema": ("STRING", {"default": "", "multiline": True,
                                             "tooltip": "A JSON Schema for a structured final answer."}),
                **limit_inputs(),
                "fail_on_error": ("BOOLEAN", {"default": True, "tooltip": "Fail the node when the model errors or "
                                                                          "the answer breaks the schema; off: report "
                                                                          "it in steps."}),
                # new widgets go last: saved UI workflows list widget values by position
                "images": ("IMAGE", {"tooltip": "Images shown to the model with the task (a vision model)."}),
                "image_detail": (DETAILS, {"default": "auto", "tooltip": (
                    "How closely the model looks: low is cheaper, high reads small print.")}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, session_id="", **_):
        """With memory the answer depends on the stored session, not only the inputs: never reuse a cached run.
        A linked session id may not be known yet here, so anything but an empty widget counts as memory."""
        return "" if session_id == "" else float("nan")

    async def run(self, model, system_prompt, task, tools=None, session_id="", memory_window=20, history=None,
                  output_schema="", max_steps=10, max_tokens=0, max_cost=0.0, timeout=0.0, tool_timeout=60.0,
                  temperature=-1.0, fail_on_error=True, images=None, image_detail="auto", unique_id=None):
        spec = spec_from(model, "agent", system_prompt, tools, output_schema, max_steps, max_tokens, max_cost,
                         timeout, tool_timeout, temperature)
        past = list(_history(history))
        store = SessionStore.open(current_home().state_db) if session_id.strip() else None
        try:
            memory = SessionMemory(store, session_id.strip(), max_messages=memory_window or None) if store else None
            if memory is not None:
                past = [*memory.load().as_messages(), *past]
            async with spec.open() as agent:
                pictures = image_parts(images, "", image_detail)
                turn = list(user_turn(task, pictures)) if pictures else task  # the task's text, then its images
                result = await agent.run(turn, history=past, on_step=step_reporter(unique_id, agent.name))
            if memory is not None:
                memory.save(result.new_messages)
        finally:
            if store is not None:
                store.close()
        check_result(result, fail_on_error)
        record = result.to_json()
        return (result.answer, record, record["usage"], result.output, dump_messages(result.messages))


def check_result(result: AgentResult, fail_on_error: bool) -> None:
    if fail_on_error and result.stop_reason in ("error", "invalid_output"):
        raise RuntimeError(f"agent {result.agent!r} failed after {len(result.steps)} step(s): {result.error}")


def _history(value: Any):
    if value is None or value == "":
        return ()
    return load_messages(value if isinstance(value, str) else list(value))


class AgentProfile:
    DESCRIPTION = ("Describe an agent (model, name, role, tools, limits) without running it, for a Round Table "
                   "or Agent As Tool.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (AGENT,)
    RETURN_NAMES = ("agent",)
    FUNCTION = "define"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (LLM_MODEL, {"tooltip": "From a model loader node."}),
                "name": ("STRING", {"default": "assistant", "tooltip": "How others address it; unique at a table."}),
                "system_prompt": ("STRING", {"default": "", "multiline": True, "tooltip": "Its role."}),
            },
            "optional": {
                "tools": (TOOL, {}),
                "output_schema": ("STRING", {"default": "", "multiline": True}),
                **limit_inputs(),
            },
        }

    def define(self, model, name, system_prompt, tools=None, output_schema="", max_steps=10, max_tokens=0,
               max_cost=0.0, timeout=0.0, tool_timeout=60.0, temperature=-1.0):
        return (spec_from(model, name, system_prompt, tools, output_schema, max_steps, max_tokens, max_cost,
                          timeout, tool_timeout, temperature),)


class AgentAsTool:
    DESCRIPTION = ("Offer an agent to another agent as a tool: the caller writes a task, this agent runs its own "
                   "loop on it and its answer is the tool's result.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (TOOL,)
    RETURN_NAMES = ("tools",)
    FUNCTION = "wrap"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "agent": (AGENT, {"tooltip": "From an Agent Profile node."}),
                "description": ("STRING", {"default": "", "multiline": True,
                                           "tooltip": "When the calling agent should delegate to this one."}),
            },
            "optional": {
                "tool_name": ("STRING", {"default": "", "tooltip": "The tool's name; empty: the agent's name."}),
                "tools": (TOOL, {"tooltip": "More tools to offer alongside this one."}),
            },
        }

    def wrap(self, agent, description, tool_name="", tools=None):
        spec: AgentSpec = agent

        async def run(task: str) -> AgentResult:
            async with spec.open() as sub_agent:
                return await sub_agent.run(task)

        tool = delegation_tool(run, name=tool_name.strip() or spec.name, description=description,
                               timeout=spec.limits.timeout)
        return ([*collect_tools(tools), tool],)


NODE_CLASS_MAPPINGS = {"Agent": AgentNode, "AgentProfile": AgentProfile, "AgentAsTool": AgentAsTool}
NODE_DISPLAY_NAME_MAPPINGS = {"Agent": "Agent", "AgentProfile": "Agent Profile", "AgentAsTool": "Agent As Tool"}
