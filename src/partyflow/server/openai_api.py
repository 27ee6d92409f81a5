"""OpenAI-compatible routes: published workflows answer `/v1/models` and `/v1/chat/completions`.

Each request runs its workflow directly on the engine (`Engine.run_async`), not through the ComfyUI queue, so
chat clients are not stuck behind editor prompts and several chats run at once. Tokens stream as the workflow's
LLM Chat node writes them: the node's `partyflow.llm.stream` messages become SSE chunks. The marker that
publishes a workflow and the request mapping live in `published.py`; docs/serving.md describes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from partyflow.engine.engine import Engine, PromptValidationError, RunResult
from partyflow.engine.events import CustomMessage, Event
from partyflow.server.access import data_user, identity_of
from partyflow.server.context import CONTEXT
from partyflow.server.errors import BadJSON, read_json
from partyflow.server.published import (
    BadRequest,
    Catalog,
    ChatTurn,
    Publication,
    PublishError,
    apply_turn,
    as_text,
    parse_chat,
    stream_node,
    usage_from,
)
from partyflow.server.users import DEFAULT_USER, UnknownUser

logger = logging.getLogger("partyflow.server.openai")

STREAM_EVENT = "partyflow.llm.stream"
USER_HEADER = "comfy-user"


class WorkflowFailed(RuntimeError):
    """The published workflow was refused or failed; the client cannot fix it, so it is a server error."""


def error_response(status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                   code: str | None = None) -> web.Response:
    """An error in OpenAI's JSON shape, which its clients turn into typed exceptions."""
    return web.json_response({"error": {"message": message, "type": kind, "param": param, "code": code}},
                             status=status)


class OpenAIRoutes:
    """The handlers, bound to one engine and one catalog of published workflows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.catalog = Catalog()

    def _models(self, request: web.Request) -> dict[str, Publication]:
        """The models this caller may use. A signed-in user sees what any user of the server published (publishing
        is for the team); a token scoped to `chat:<model>` sees only those models."""
        identity = identity_of(request)
        if identity is None or identity.via in ("local", "server-token"):
            return self.catalog.models(_workflows_dir(request, self.engine))
        models: dict[str, Publication] = {}
        for folder in sorted(self.engine.home.user.glob("*/workflows")):
            for name, publication in self.catalog.models(folder).items():
                if identity.may_chat(name):
                    models.setdefault(name, publication)
        return models

    async def list_models(self, request: web.Request) -> web.Response:
        try:
            models = self._models(request)
        except BadRequest as exc:
            return error_response(400, str(exc), param=exc.param)
        return web.json_response({"object": "list", "data": [_model_card(p) for p in models.values()]})

    async def get_model(self, request: web.Request) -> web.Response:
        try:
            publication = self._models(request).get(request.match_info["model"])
        except BadRequest as exc:
            return error_response(400, str(exc), param=exc.param)
        if publication is None:
            return _unknown_model(request.match_info["model"])
        return web.json_response(_model_card(publication))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await read_json(request)
        except BadJSON as exc:
            return error_response(400, str(exc))
        try:
            model, turn, stream, include_usage = parse_chat(body)
            publication = self._models(request).get(model)
        except BadRequest as exc:
            return error_response(400, str(exc), param=exc.param)
        if publication is None:
            return _unknown_model(model)
        try:
            prompt = self._prompt(publication, turn)
        except PublishError as exc:
            return error_response(500, str(exc), kind="server_error", code="workflow_invalid")
        run = _Run(self.engine, publication, prompt, turn)
        if stream:
            return await run.stream(request, include_usage)
        try:
            text, usage = await run.complete()
        except WorkflowFailed as exc:
            return error_response(500, str(exc), kind="server_error", code="workflow_failed")
        return web.json_response(_completion(run.id, model, text, usage))

    def _prompt(self, publication: Publication, turn: ChatTurn) -> dict[str, Any]:
        try:
            prompt = self.engine.load_workflow(publication.document)
        except ValueError as exc:
            raise PublishError(f"{publication.path.name}: {exc}") from exc
        return apply_turn(publication, prompt, turn, InputNames(self.engine))


class _Run:
    """One chat request's execution of its workflow."""

    def __init__(self, engine: Engine, publication: Publication, prompt: dict[str, Any], turn: ChatTurn) -> None:
        self.engine, self.publication, self.prompt, self.turn = engine, publication, prompt, turn
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    async def execute(self, sinks: Sequence[Callable[[Event], None]] = ()) -> tuple[str, dict[str, int]]:
        prompt_id = str(uuid.uuid4())
        wanted = [self.publication.output[0]]
        if self.publication.usage is not None and self.publication.usage[0] not in wanted:
            wanted.append(self.publication.usage[0])
        try:
            result = await self.engine.run_async(self.prompt, prompt_id=prompt_id, outputs=wanted, sinks=sinks)
        except PromptValidationError as exc:
            raise WorkflowFailed(f"{self.publication.path.name} failed validation: {exc}") from exc
        except asyncio.CancelledError:
            self.engine.interrupt(prompt_id)  # the client went away: stop spending tokens on it
            raise
        if not result.ok:
            failure = result.error
            where = f" in node {failure.node_id} ({failure.class_type})" if failure and failure.node_id else ""
            raise WorkflowFailed(f"the workflow {result.status}{where}: "
                                 f"{failure.message if failure else 'interrupted'}")
        node_id, index = self.publication.output
        try:
            text = as_text(result.output(node_id, index))
        except (KeyError, IndexError):
            raise WorkflowFailed(f"output {index} of node {node_id} produced nothing") from None
        return text, usage_from(self._usage_reports(result), self.turn, text)

    async def complete(self) -> tuple[str, dict[str, int]]:
        return await self.execute()

    def _usage_reports(self, result: RunResult) -> list[Any]:
        if self.publication.usage is not None:
            node_id, index = self.publication.usage
            return [_safe_output(result, node_id, index)]
        reports = []
        for node_id in result.node_outputs:
            class_type = self.prompt.get(node_id, {}).get("class_type", "")
            names = self.engine.object_info(class_type).get(class_type, {}).get("output_name", [])
            if "usage" in names:
                reports.append(_safe_output(result, node_id, list(names).index("usage")))
        return reports

    async def stream(self, request: web.Request, include_usage: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        source = stream_node(self.publication, self.prompt, InputNames(self.engine))

        def forward(event: Event) -> None:
            if (isinstance(event, CustomMessage) and event.event == STREAM_EVENT and isinstance(event.data, dict)
                    and str(event.data.get("node")) == source and isinstance(event.data.get("text"), str)):
                pieces.put_nowait(event.data["text"])

        forward.wants = frozenset({CustomMessage})  # type: ignore[attr-defined]
        task = asyncio.create_task(self.execute([forward]))
        task.add_done_callback(lambda _: pieces.put_nowait(None))
        streamed: list[str] = []
        try:
            await self._send(response, {"role": "assistant", "content": ""})
            while (piece := await pieces.get()) is not None:
                streamed.append(piece)
                await self._send(response, {"content": piece})
            text, usage = await task
        except WorkflowFailed as exc:
            await _event(response, {"error": {"message": str(exc), "type": "server_error", "param": None,
                                              "code": "workflow_failed"}})
        else:
            sent = "".join(streamed)
            if text != sent and text.startswith(sent):  # a single chunk, or what followed the streamed part
                await self._send(response, {"content": text[len(sent):]})
            await self._send(response, {}, finish_reason="stop")
            if include_usage:
                await _event(response, {**self._chunk_head(), "choices": [], "usage": usage})
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WorkflowFailed):
                    await task
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _chunk_head(self) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.publication.model, "system_fingerprint": None}

    async def _send(self, response: web.StreamResponse, delta: dict[str, Any],
                    finish_reason: str | None = None) -> None:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        await _event(response, {**self._chunk_head(), "choices": [choice]})


class InputNames:
    """A class's declared input names from the engine's object_info (what `published` asks for)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, class_type: str) -> Iterable[str]:
        info = self.engine.object_info(class_type).get(class_type, {})
        return [name for section in info.get("input", {}).values() for name in section]


async def _event(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode())


def _workflows_dir(request: web.Request, engine: Engine) -> Path:
    """The requesting user's saved workflows: the signed-in user's, else the `comfy-user` header's."""
    server = request.app.get(CONTEXT)
    if server is None:  # mounted on a bare app (tests of this module alone): single-user
        return engine.home.user / DEFAULT_USER / "workflows"
    try:
        return server.users.directory(data_user(request, server.users)) / "workflows"
    except (UnknownUser, PermissionError) as exc:
        raise BadRequest(str(exc), param=USER_HEADER) from None


def _safe_output(result: RunResult, node_id: str, index: int) -> Any:
    try:
        return result.output(node_id, index)
    except (KeyError, IndexError):
        return None


def _model_card(publication: Publication) -> dict[str, Any]:
    return {"id": publication.model, "object": "model", "created": publication.created, "owned_by": "partyflow"}


def _unknown_model(model: str) -> web.Response:
    return error_response(404, f"The model '{model}' does not exist or is not published", param="model",
                          code="model_not_found")


def _completion(completion_id: str, model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage,
    }


def openai_extension(engine: Engine) -> Callable[[web.Application], None]:
    """An app extension adding `/v1/models`, `/v1/models/{model}` and `/v1/chat/completions`."""

    def install(app: web.Application) -> None:
        routes = OpenAIRoutes(engine)
        app.router.add_get("/v1/models", routes.list_models)
        app.router.add_get("/v1/models/{model}", routes.get_model)
        app.router.add_post("/v1/chat/completions", routes.chat_completions)

    return install
