"""Memory nodes: load a session's context, append messages to it, clear it, and summarise its older turns."""

from __future__ import annotations

from typing import Any

from partyflow.llm import Message, dump_messages, load_messages
from partyflow.memory import SessionMemory, SessionStore

from .common import CATEGORY, JSON, LLM_HISTORY, LLM_MODEL, current_home, model_name, open_model

MEMORY_CATEGORY = f"{CATEGORY}/memory"


def _session(session_id: str) -> str:
    if not session_id.strip():
        raise ValueError("the session id is empty; name the conversation to remember (e.g. a user or ticket id)")
    return session_id.strip()


def _store() -> SessionStore:
    return SessionStore.open(current_home().state_db)


class _MemoryNode:
    CATEGORY = MEMORY_CATEGORY

    @classmethod
    def IS_CHANGED(cls, **_: Any) -> float:
        return float("nan")  # the store changes behind the workflow's back: never reuse a cached result


class LoadMemory(_MemoryNode):
    DESCRIPTION = ("The remembered conversation of a session: its summary (if any) and the most recent messages, "
                   "as a history for Chat or Agent nodes.")
    RETURN_TYPES = (LLM_HISTORY, "STRING", JSON)
    RETURN_NAMES = ("history", "summary", "info")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"session_id": ("STRING", {"default": ""})}, "optional": {
            "max_messages": ("INT", {"default": 20, "min": 0, "max": 100_000, "tooltip": "0: all."}),
            "max_tokens": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip": "Estimated; 0: no limit."}),
        }}

    def load(self, session_id, max_messages=20, max_tokens=0):
        with _store() as store:
            memory = SessionMemory(store, _session(session_id), max_messages=max_messages or None,
                                   max_tokens=max_tokens or None)
            context = memory.load()
            info = store.session(memory.session_id)
        details = {"session_id": memory.session_id, "messages": info.message_count if info else 0,
                   "summary_upto": info.summary_upto if info else 0, "metadata": info.metadata if info else {}}
        return (dump_messages(context.as_messages()), context.summary, details)


class AppendMemory(_MemoryNode):
    DESCRIPTION = "Add messages (a history, or a user/assistant exchange) to a session; outputs its message count."
    RETURN_TYPES = ("INT",)
    RETURN_NAMES = ("messages",)
    FUNCTION = "append"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"session_id": ("STRING", {"default": ""})}, "optional": {
            "history": (LLM_HISTORY, {"tooltip": "Messages to add (system messages are skipped)."}),
            "user": ("STRING", {"default": "", "multiline": True}),
            "assistant": ("STRING", {"default": "", "multiline": True}),
            "metadata": (JSON, {"tooltip": "Merged into the session's metadata."}),
        }}

    def append(self, session_id, history=None, user="", assistant="", metadata=None):
        messages: list[Message] = list(load_messages(history if isinstance(history, str) else list(history))
                                       ) if history else []
        messages += load_messages([m for m in ({"role": "user", "content": user} if user else None,
                                               {"role": "assistant", "content": assistant} if assistant else None)
                                   if m])
        with _store() as store:
            memory = SessionMemory(store, _session(session_id))
            memory.save(messages)
            if isinstance(metadata, dict) and metadata:
                store.update_metadata(memory.session_id, metadata)
            info = store.session(memory.session_id)
        return (info.message_count if info else 0,)


class ClearMemory(_MemoryNode):
    DESCRIPTION = "Forget a session: its messages, summary and metadata."
    RETURN_TYPES = ("BOOLEAN",)
    RETURN_NAMES = ("existed",)
    FUNCTION = "clear"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"session_id": ("STRING", {"default": ""})}}

    def clear(self, session_id):
        with _store() as store:
            return (store.clear(_session(session_id)),)


class SummarizeMemory(_MemoryNode):
    DESCRIPTION = ("Fold a session's older turns into its summary with a model, keeping the most recent messages "
                   "verbatim; loads then send the summary instead of the old turns.")
    RETURN_TYPES = ("STRING", JSON)
    RETURN_NAMES = ("summary", "usage")
    FUNCTION = "summarize"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": (LLM_MODEL, {}), "session_id": ("STRING", {"default": ""})}, "optional": {
            "keep_last": ("INT", {"default": 10, "min": 0, "max": 10_000}),
            "max_words": ("INT", {"default": 200, "min": 20, "max": 5_000}),
        }}

    async def summarize(self, model, session_id, keep_last=10, max_words=200):
        with _store() as store:
            memory = SessionMemory(store, _session(session_id))
            async with open_model(model) as provider:
                usage = await memory.compact(provider, keep_last=keep_last, model_name=model_name(model),
                                             max_words=max_words)
            info = store.session(memory.session_id)
        return (info.summary if info else "", {"prompt_tokens": usage.prompt_tokens,
                                               "completion_tokens": usage.completion_tokens, "cost": usage.cost})


NODE_CLASS_MAPPINGS = {"LoadMemory": LoadMemory, "AppendMemory": AppendMemory, "ClearMemory": ClearMemory,
                       "SummarizeMemory": SummarizeMemory}
NODE_DISPLAY_NAME_MAPPINGS = {"LoadMemory": "Load Memory", "AppendMemory": "Append To Memory",
                              "ClearMemory": "Clear Memory", "SummarizeMemory": "Summarize Memory"}
