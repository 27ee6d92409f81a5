"""Party nodes: a round table of agents, and intent routing (classify, then run only the chosen branch)."""

from __future__ import annotations

from contextlib import AsyncExitStack

from partyflow.agents import RoundTable, classify, parse_categories
from partyflow.agents.record import usage_json

from .common import AGENT, ANY, CATEGORY, JSON, LLM_MODEL, TURN_EVENT, model_name, open_model, send_event
from .spec import AgentSpec, step_reporter

MAX_MEMBERS = 6
MAX_BRANCHES = 8


class RoundTableNode:
    DESCRIPTION = ("Agents take turns on a shared transcript: in a fixed order, or chosen each turn by a moderator "
                   "model, until the moderator ends it, a turn contains the stop phrase, or max turns is reached.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "STRING", JSON)
    RETURN_NAMES = ("transcript", "last_turn", "record")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        members = {f"agent_{i}": (AGENT, {"tooltip": "From an Agent Profile node."})
                   for i in range(3, MAX_MEMBERS + 1)}
        return {
            "required": {
                "agent_1": (AGENT, {"tooltip": "From an Agent Profile node; speaks first in a fixed order."}),
                "agent_2": (AGENT, {}),
                "topic": ("STRING", {"default": "", "multiline": True}),
                "max_turns": ("INT", {"default": 6, "min": 1, "max": 200}),
            },
            "optional": {
                **members,
                "stop_phrase": ("STRING", {"default": "", "tooltip": "A turn containing it ends the discussion."}),
                "moderator": (LLM_MODEL, {"tooltip": "Chooses each next speaker, or ends; none: fixed order."}),
                "moderator_prompt": ("STRING", {"default": "", "multiline": True}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    async def run(self, agent_1, agent_2, topic, max_turns, stop_phrase="", moderator=None, moderator_prompt="",
                  unique_id=None, **more):
        specs: list[AgentSpec] = [agent_1, agent_2, *(more[f"agent_{i}"] for i in range(3, MAX_MEMBERS + 1)
                                                      if more.get(f"agent_{i}") is not None)]
        async with AsyncExitStack() as stack:
            agents = [await stack.enter_async_context(spec.open()) for spec in specs]
            judge = await stack.enter_async_context(open_model(moderator)) if moderator is not None else None
            table = RoundTable(agents, moderator=judge, moderator_model=model_name(moderator) if moderator else None,
                               moderator_prompt=moderator_prompt, max_turns=max_turns, stop_phrase=stop_phrase)
            result = await table.run(
                topic, on_turn=lambda turn: send_event(TURN_EVENT, {"node": unique_id, **turn.to_json()}),
                on_step=lambda name, step: step_reporter(unique_id, name)(step))
        if result.stop_reason == "error":
            raise RuntimeError(f"the round table stopped: {result.error}")
        last = result.transcript[-1].text if result.transcript else ""
        return (result.text(), last, result.to_json())


class IntentRouter:
    DESCRIPTION = ("Classify a text with a model into one of the listed categories. Link 'index' to an Intent "
                   "Switch so that only the chosen category's branch runs.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", "INT", JSON)
    RETURN_NAMES = ("category", "index", "details")
    OUTPUT_TOOLTIPS = ("The chosen category's name.", "Its position in the list, from 0.",
                       "The model's raw reply, whether it matched a name, and usage.")
    FUNCTION = "route"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (LLM_MODEL, {}),
                "text": ("STRING", {"default": "", "multiline": True, "tooltip": "What to classify."}),
                "categories": ("STRING", {"default": "question: asks for information\nother: anything else",
                                          "multiline": True,
                                          "tooltip": "One per line: 'name: when to choose it'. The last is the "
                                                     "fallback when the reply names none."}),
            },
            "optional": {"instructions": ("STRING", {"default": "", "multiline": True})},
        }

    async def route(self, model, text, categories, instructions=""):
        listed = parse_categories(categories)
        async with open_model(model) as provider:
            intent = await classify(provider, text, listed, model_name=model_name(model), instructions=instructions)
        return (intent.category, intent.index, {"category": intent.category, "index": intent.index,
                                                "matched": intent.matched, "reply": intent.raw,
                                                "usage": usage_json(intent.usage)})


class IntentSwitch:
    DESCRIPTION = ("Pass on the branch chosen by index (from an Intent Router). Branches are lazy: only the chosen "
                   "one is computed, so the other agents never run.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (ANY,)
    RETURN_NAMES = ("value",)
    FUNCTION = "switch"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"index": ("INT", {"default": 0, "min": 0, "max": MAX_BRANCHES - 1})},
            "optional": {f"branch_{i}": (ANY, {"lazy": True, "tooltip": f"Used when index is {i}."})
                         for i in range(MAX_BRANCHES)},
        }

    def check_lazy_status(self, index, **branches):
        name = f"branch_{index}"
        return [name] if branches.get(name) is None else []

    def switch(self, index, **branches):
        name = f"branch_{index}"
        if name not in branches or branches[name] is None:
            raise ValueError(f"the intent switch chose {name}, which is not connected; link a branch for every "
                             "category of the router")
        return (branches[name],)


NODE_CLASS_MAPPINGS = {"RoundTable": RoundTableNode, "IntentRouter": IntentRouter, "IntentSwitch": IntentSwitch}
NODE_DISPLAY_NAME_MAPPINGS = {"RoundTable": "Round Table", "IntentRouter": "Intent Router",
                              "IntentSwitch": "Intent Switch"}
