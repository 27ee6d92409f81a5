"""Workflows published as chat models: the marker in a saved workflow, and mapping a chat request onto it.

A workflow saved by the editor (`<home>/user/<user>/workflows/**/*.json`) is published when its `extra` holds

    "partyflow": {"publish": {"model": "echo-bot",
                              "input": {"node": 3, "input": "user_prompt"},
                              "output": {"node": 5, "output": 0},
                              "history": {"node": 3, "input": "history"},   # optional
                              "usage": {"node": 3, "output": 3},            # optional
                              "stream": {"node": 3}}}                       # optional

The marker lives in `extra` because the editor keeps unknown keys there on every save, so publishing survives
editing. Everything here is plain data and functions so it is testable without a server (docs/serving.md).
"""

from __future__ import annotations

import json
import logging
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

logger = logging.getLogger("partyflow.server.published")

ROLES = ("system", "developer", "user", "assistant", "tool")
REQUEST_OPTIONS = ("temperature", "max_tokens", "seed")  # copied onto the input node when it declares them
CHARS_PER_TOKEN = 4  # the estimate used when a workflow reports no usage


class PublishError(ValueError):
    """A publish marker that cannot be used; the message names the file and the field."""


class BadRequest(ValueError):
    """A chat request a client must fix; `param` names the offending field as OpenAI does."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Publication:
    """One published workflow: where the chat goes in, where the reply comes out."""

    model: str
    path: Path
    document: Mapping[str, Any]
    input: tuple[str, str]
    output: tuple[str, int]
    history: tuple[str, str] | None = None
    usage: tuple[str, int] | None = None
    stream: str | None = None
    created: int = 0


@dataclass(frozen=True)
class ChatTurn:
    """A chat request reduced to what a workflow takes: the last user message, the turns before it, options."""

    text: str
    history: list[dict[str, str]]
    options: dict[str, Any] = field(default_factory=dict)

    def prompt_chars(self) -> int:
        return len(self.text) + sum(len(m["content"]) for m in self.history)


def read_publication(path: Path, document: Any) -> Publication | None:
    """The publication a saved workflow declares, None when it declares none; PublishError when it is broken."""
    if not isinstance(document, Mapping):
        return None
    extra = document.get("extra")
    marker = extra.get("partyflow", {}).get("publish") if isinstance(extra, Mapping) and isinstance(
        extra.get("partyflow"), Mapping) else None
    if marker is None:
        return None
    where = f"{path.name}: extra.partyflow.publish"
    if not isinstance(marker, Mapping):
        raise PublishError(f"{where} must be an object")
    model = marker.get("model", path.stem)
    if not isinstance(model, str) or not model.strip():
        raise PublishError(f"{where}.model must be a non-empty string")
    return Publication(
        model=model.strip(), path=path, document=document,
        input=_endpoint(marker, "input", "input", where, required=True),  # type: ignore[arg-type]
        output=_endpoint(marker, "output", "output", where, required=True, default=0),  # type: ignore[arg-type]
        history=_endpoint(marker, "history", "input", where),  # type: ignore[arg-type]
        usage=_endpoint(marker, "usage", "output", where),  # type: ignore[arg-type]
        stream=_node_of(marker, "stream", where),
    )


def _node_of(marker: Mapping[str, Any], key: str, where: str) -> str | None:
    value = marker.get(key)
    if value is None:
        return None
    node = value.get("node") if isinstance(value, Mapping) else None
    if not isinstance(node, (int, str)) or isinstance(node, bool) or str(node) == "":
        raise PublishError(f"{where}.{key}.node must be a node id")
    return str(node)


def _endpoint(marker: Mapping[str, Any], key: str, slot: str, where: str, *, required: bool = False,
              default: int | None = None) -> tuple[str, Any] | None:
    node = _node_of(marker, key, where)
    if node is None:
        if required:
            raise PublishError(f"{where}.{key} is missing: give {{\"node\": ID, \"{slot}\": ...}}")
        return None
    value = marker[key].get(slot, default)
    if slot == "input" and not (isinstance(value, str) and value):
        raise PublishError(f"{where}.{key}.input must name an input of node {node}")
    if slot == "output" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise PublishError(f"{where}.{key}.output must be an output index (0, 1, ...)")
    return node, value


class Catalog:
    """Published workflows, re-read only when a file changes (one instance per app, no globals)."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[int, int, Publication | None]] = {}

    def models(self, root: Path) -> dict[str, Publication]:
        """model name -> publication for the workflows under `root` (a user's `workflows/` folder); on a name
        clash the first file in path order wins (and a warning is logged)."""
        found: dict[str, Publication] = {}
        for path in sorted(root.rglob("*.json")) if root.is_dir() else ():
            publication = self._load(path)
            if publication is None:
                continue
            if publication.model in found:
                logger.warning("%s publishes model %r, already published by %s; ignored", path,
                               publication.model, found[publication.model].path)
                continue
            found[publication.model] = publication
        return found

    def _load(self, path: Path) -> Publication | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        cached = self._seen.get(path)
        if cached is not None and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        publication: Publication | None = None
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            found = read_publication(path, document)
            if found is not None:
                publication = replace(found, created=int(stat.st_mtime))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, PublishError) as exc:
            logger.warning("workflow %s is not served as a model: %s", path, exc)
        self._seen[path] = (stat.st_mtime_ns, stat.st_size, publication)
        return publication


def parse_chat(body: Any) -> tuple[str, ChatTurn, bool, bool]:
    """(model, turn, stream, include_usage) from a chat-completions body; BadRequest names what is wrong."""
    if not isinstance(body, Mapping):
        raise BadRequest("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' is required and must be a string", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    plain = [_message(m, i) for i, m in enumerate(messages)]
    last_user = max((i for i, m in enumerate(plain) if m["role"] == "user"), default=None)
    if last_user is None:
        raise BadRequest("'messages' must contain a user message", param="messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, Mapping):
        raise BadRequest("'stream_options' must be an object", param="stream_options")
    options = {}
    for name in REQUEST_OPTIONS:
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadRequest(f"'{name}' must be a number", param=name)
        options[name] = value
    history = [{"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]}
               for m in plain[:last_user] if m["role"] != "tool"]
    turn = ChatTurn(plain[last_user]["content"], history, options)
    return model, turn, stream, bool(stream_options.get("include_usage", False))


def _message(raw: Any, index: int) -> dict[str, str]:
    param = f"messages[{index}]"
    if not isinstance(raw, Mapping):
        raise BadRequest(f"{param} must be an object", param=param)
    role = raw.get("role")
    if role not in ROLES:
        raise BadRequest(f"{param}.role must be one of {', '.join(ROLES)}", param=f"{param}.role")
    content = raw.get("content")
    if content is None:
        return {"role": role, "content": ""}
    if isinstance(content, str):
        return {"role": role, "content": content}
    if isinstance(content, list) and all(isinstance(p, Mapping) for p in content):
        if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in content):
            raise BadRequest(f"{param}.content: only text parts are supported", param=f"{param}.content")
        return {"role": role, "content": "".join(p["text"] for p in content)}
    raise BadRequest(f"{param}.content must be a string or a list of text parts", param=f"{param}.content")


def apply_turn(publication: Publication, prompt: dict[str, Any], turn: ChatTurn,
               input_names: Callable[[str], Iterable[str]]) -> dict[str, Any]:
    """Set the workflow's chat input (and history, and options the input node declares) in an API prompt.

    `input_names(class_type)` lists a class's declared inputs; with no explicit `history` endpoint, an input
    named `history` on the input node receives the earlier turns as JSON.
    """
    node_id, name = publication.input
    node = prompt.get(node_id)
    if node is None:
        raise PublishError(f"{publication.path.name}: input node {node_id} is not in the workflow (is it muted?)")
    declared = set(input_names(node["class_type"]))
    node["inputs"][name] = turn.text
    history = publication.history or ((node_id, "history") if "history" in declared else None)
    if history is not None and turn.history:
        target = prompt.get(history[0])
        if target is None:
            raise PublishError(f"{publication.path.name}: history node {history[0]} is not in the workflow")
        target["inputs"][history[1]] = json.dumps(turn.history, ensure_ascii=False)
    for option, value in turn.options.items():
        if option in declared and not isinstance(node["inputs"].get(option), list):
            node["inputs"][option] = value
    return prompt


def stream_node(publication: Publication, prompt: Mapping[str, Any],
                input_names: Callable[[str], Iterable[str]]) -> str | None:
    """Whose `partyflow.llm.stream` messages become token deltas: the marker's choice, else the streaming node
    (one that declares a `stream` input, like LLM Chat) nearest upstream of the output node."""
    if publication.stream is not None:
        return publication.stream
    queue, seen = deque([publication.output[0]]), {publication.output[0]}
    while queue:
        node_id = queue.popleft()
        node = prompt.get(node_id)
        if node is None:
            continue
        if "stream" in set(input_names(node["class_type"])):
            return node_id
        for value in node.get("inputs", {}).values():
            if isinstance(value, list) and len(value) == 2 and str(value[0]) not in seen:
                seen.add(str(value[0]))
                queue.append(str(value[0]))
    return None


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


def usage_from(reports: Iterable[Any], turn: ChatTurn, reply: str) -> dict[str, int]:
    """Token counts summed over the workflow's usage reports; estimated from characters when there are none."""
    prompt = completion = 0
    counted = False
    for report in reports:
        if isinstance(report, Mapping) and isinstance(report.get("prompt_tokens"), int):
            prompt += report["prompt_tokens"]
            completion += int(report.get("completion_tokens") or 0)
            counted = True
    if not counted:
        prompt = math.ceil(turn.prompt_chars() / CHARS_PER_TOKEN)
        completion = math.ceil(len(reply) / CHARS_PER_TOKEN)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
