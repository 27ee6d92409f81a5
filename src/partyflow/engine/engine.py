"""`Engine`: the Python API over packs, validation, execution, the persistent queue and events.

One engine owns one home: its node registry, its output cache, its worker threads and its queue. The CLI
and the server are thin layers over it; nothing here is global, so tests run several engines side by side.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partyflow.config import Home, Settings, resolve_home
from partyflow.engine.cache import NoCache, OutputCache, make_cache
from partyflow.engine.events import (
    CustomMessage,
    Event,
    EventBus,
    EventSink,
    EventStream,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
)
from partyflow.engine.executor import ExecutionServices, NodePlacement, PromptExecution, Status
from partyflow.engine.failures import ExecutionFailure
from partyflow.engine.queue import PromptQueue, QueueItem
from partyflow.graph.validate import PromptValidator, ValidationResult
from partyflow.graph.workflow import apply_overrides, read_workflow_file, to_api_prompt
from partyflow.nodes.host import HostContext, current_scope, host_context
from partyflow.nodes.isolation.loading import IsolatedPacks
from partyflow.nodes.loader import PackLoadResult, load_module_pack, load_packs
from partyflow.nodes.protocol import NodeDefinitionError
from partyflow.nodes.registry import NodeRegistry

if TYPE_CHECKING:
    from partyflow.llm.models import LoadedModelInfo, ModelManager
    from partyflow.llm.usage.services import ModelServices
    from partyflow.telemetry import Tracing

logger = logging.getLogger("partyflow.engine")

BUILTIN_PACKS = ("core", "comfy", "llm", "agents", "media", "knowledge")
_HISTORY_EVENTS = (ExecutionStart, ExecutionCached, ExecutionSuccess, ExecutionError, ExecutionInterrupted)


class PromptValidationError(ValueError):
    """The prompt was refused; `result` holds every problem in ComfyUI's error JSON shape."""

    def __init__(self, result: ValidationResult) -> None:
        self.result = result
        super().__init__("; ".join(result.summary()) or "prompt failed validation")


@dataclass
class RunResult:
    """What one prompt produced: ui outputs per node (as in history), raw outputs, timings and the failure."""

    prompt_id: str
    status: Status
    outputs: dict[str, dict[str, Any]]
    node_outputs: dict[str, tuple[list[Any], ...]]
    executed: list[str]
    cached: list[str]
    timings: dict[str, float]
    error: ExecutionFailure | None = None
    messages: list[list[Any]] = field(default_factory=list)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def output(self, node_id: str, index: int = 0) -> Any:
        """The value of one output of one node (the first item when the node ran over a list)."""
        values = self.node_outputs[node_id][index]
        return values[0] if len(values) == 1 else values

    def __getitem__(self, node: Any) -> NodeValues:
        """The outputs of one node, by node id or by a builder's node handle (`result[chat].text`)."""
        node_id = node if isinstance(node, str) else str(getattr(node, "id", node))
        if node_id not in self.node_outputs:
            state = "did not run" if self.error is None else f"did not run ({self.status})"
            raise KeyError(f"node {node_id} {state}: it is not an output node nor needed by one")
        return NodeValues(self, node_id, tuple(getattr(node, "output_names", ())))

    def history_status(self) -> dict[str, Any]:
        return {"status_str": "success" if self.ok else "error", "completed": self.ok, "messages": self.messages}


class NodeValues:
    """One node's outputs in a run: `values[0]`, or `values.text` when the node was named by a builder handle."""

    def __init__(self, result: RunResult, node_id: str, names: tuple[str, ...]) -> None:
        self._result, self._node_id, self._names = result, node_id, names

    def __getitem__(self, index: int | str) -> Any:
        if isinstance(index, str):
            if index not in self._names:
                raise KeyError(f"node {self._node_id} has no output {index!r} (its outputs: {', '.join(self._names)})")
            index = self._names.index(index)
        return self._result.output(self._node_id, index)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __len__(self) -> int:
        return len(self._result.node_outputs[self._node_id])


class Engine:
    """Load packs from a home and run workflows.

    >>> engine = Engine(home="~/.partyflow")
    >>> result = engine.run("examples/hello.json")
    """

    def __init__(self, home: str | os.PathLike[str] | None = None, *, settings: Settings | None = None,
                 cache: str | None = None, load_custom_nodes: bool = True,
                 builtin_packs: Sequence[str] = BUILTIN_PACKS, extra_node_paths: Sequence[str | Path] = ()) -> None:
        self.home = Home(resolve_home(home)).ensure()
        self.settings = settings or Settings.load(self.home)
        self.registry = NodeRegistry()
        self.bus = EventBus()
        self.host = HostContext(home=self.home, registry=self.registry, emit_custom=self._custom_message)
        self.host.models = _model_manager(self.settings)  # issue 3, item 4: shared by the packs' local models
        self.host.run_workflow = self.run_async  # issue 7: workflow tools run nested prompts on this engine
        self.host.usage = _model_services(self.home)  # issue 18: routers' health and the usage ledger
        self._pool = ThreadPoolExecutor(max_workers=self.settings.max_workers, thread_name_prefix="partyflow-node")
        self._services = ExecutionServices(self.registry, self.host, make_cache(cache or self.settings.cache), self._pool,
                                           parallel_packs=_parallel_packs(self.settings.raw),
                                           tracing=_tracing(self.settings.raw, self.home))
        self._validator = PromptValidator(self.registry, max_string_length=self.settings.max_string_length)
        self._loops: dict[str, asyncio.AbstractEventLoop] = {}
        self._executions: dict[str, PromptExecution] = {}
        self._interrupt_forwards: list[Callable[[str | None], bool]] = []
        self._queue: PromptQueue | None = None
        self._queue_lock = threading.Lock()
        self._runner: asyncio.AbstractEventLoop | None = None
        self._runner_lock = threading.Lock()
        self.pack_results = self._load_packs(builtin_packs, load_custom_nodes, extra_node_paths)

    # ---- packs and discovery ----------------------------------------------------------------------------------

    def _load_packs(self, builtin: Sequence[str], custom: bool, extra: Sequence[str | Path]) -> list[PackLoadResult]:
        timeout = self.settings.pack_import_timeout
        results = [load_module_pack(f"partyflow.builtin_nodes.{name}", self.host, timeout=timeout) for name in builtin]
        directories = [self.home.custom_nodes] if custom else []
        directories += [Path(p).expanduser() for p in (*self.settings.extra_node_paths, *extra)]
        # isolated packs (issue 6, item 8): packs marked isolated in provenance load through a worker process
        self._isolated = IsolatedPacks(self.home, self.host, timeout=timeout)
        return results + load_packs(directories, self.host, timeout=timeout, load_elsewhere=self._isolated.load)

    def object_info(self, class_type: str | None = None) -> dict[str, dict[str, Any]]:
        with host_context(self.host):
            return self.registry.object_info(class_type)

    # ---- workflows ----------------------------------------------------------------------------------------------

    def load_workflow(self, workflow: str | os.PathLike[str] | Mapping[str, Any],
                      overrides: Sequence[str] = ()) -> dict[str, Any]:
        """An API-format prompt from a file path, an API prompt or a UI workflow (converted with object_info)."""
        document = read_workflow_file(workflow) if isinstance(workflow, (str, os.PathLike)) else workflow
        prompt = to_api_prompt(document, self.object_info)
        return apply_overrides(prompt, overrides, self._input_names) if overrides else prompt

    def _input_names(self, class_type: str) -> list[str] | None:
        """The inputs a class declares, for checking overrides; None when the class is unknown or broken."""
        if class_type not in self.registry:
            return None
        try:
            with host_context(self.host):
                return list(self.registry.definition(class_type).inputs)
        except NodeDefinitionError:
            return None

    def validate(self, workflow: str | os.PathLike[str] | Mapping[str, Any], *,
                 outputs: Iterable[str] | None = None) -> ValidationResult:
        prompt = self.load_workflow(workflow) if not isinstance(workflow, Mapping) else to_api_prompt(workflow, self.object_info)
        with host_context(self.host):
            return self._validator.validate(prompt, outputs=outputs)

    def _checked(self, workflow: str | os.PathLike[str] | Mapping[str, Any], outputs: Iterable[str] | None,
                 strict: bool) -> ValidationResult:
        result = self.validate(workflow, outputs=outputs)
        if (strict and not result.ok) or not result.runnable_outputs:
            raise PromptValidationError(result)
        return result

    # ---- running ------------------------------------------------------------------------------------------------

    async def run_async(self, workflow: str | os.PathLike[str] | Mapping[str, Any], *, prompt_id: str | None = None,
                        outputs: Iterable[str] | None = None, extra_data: Mapping[str, Any] | None = None,
                        sinks: Sequence[EventSink] = (), client_id: str | None = None,
                        strict: bool = True) -> RunResult:
        """Validate and run now (not through the queue). Raises PromptValidationError for a refused prompt."""
        checked = self._checked(workflow, outputs, strict)
        return await self._execute(checked.prompt, checked.runnable_outputs, prompt_id or str(uuid.uuid4()),
                                   extra_data, sinks, client_id)

    def run(self, workflow: str | os.PathLike[str] | Mapping[str, Any], **options: Any) -> RunResult:
        """`run_async` for synchronous callers (not from inside a running event loop).

        One event loop is kept for the engine's synchronous runs (a new loop per run costs more than a cached
        rerun); a second thread running at the same time gets a loop of its own.
        """
        if not self._runner_lock.acquire(blocking=False):
            return asyncio.run(self.run_async(workflow, **options))
        try:
            if self._runner is None:
                self._runner = asyncio.new_event_loop()
            return self._runner.run_until_complete(self.run_async(workflow, **options))
        finally:
            self._runner_lock.release()

    def stream(self, workflow: str | os.PathLike[str] | Mapping[str, Any], **options: Any) -> PromptStream:
        """Run a workflow and iterate over its events as they happen (`async for event in engine.stream(wf)`);
        the stream's `result` holds the RunResult once iteration ends. Validation errors raise when iterating."""
        return PromptStream(self.run_async, workflow, options)

    def events(self) -> EventStream:
        """Every event of every prompt this engine runs, as an async iterator; call it inside the event loop.

        The stream is subscribed when created, so nothing is missed between creating and iterating it; close it
        (or use it as `async with`) when done.
        """
        return EventStream(self.bus)

    async def _execute(self, prompt: Mapping[str, Any], outputs: list[str], prompt_id: str,
                       extra_data: Mapping[str, Any] | None, sinks: Sequence[EventSink],
                       client_id: str | None) -> RunResult:
        messages: list[list[Any]] = []
        bus = self.bus.with_sinks([*sinks, _history_recorder(messages)])
        self._loops[prompt_id] = self.host.loop = asyncio.get_running_loop()
        execution = PromptExecution(prompt, prompt_id=prompt_id, outputs=outputs, services=self._services, bus=bus,
                                    extra_data=extra_data, client_id=client_id)
        self._executions[prompt_id] = execution
        try:
            outcome = await execution.run()
        finally:
            self._loops.pop(prompt_id, None)
            self._executions.pop(prompt_id, None)
        return RunResult(prompt_id, outcome.status, outcome.ui, {k: v.outputs for k, v in outcome.results.items()},
                         outcome.executed, outcome.cached, outcome.timings, outcome.failure, messages, outcome.meta)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Stop the running prompt (or the given one); True if something was running."""
        if prompt_id is not None:
            targets = [self._executions[prompt_id]] if prompt_id in self._executions else []
        else:
            targets = list(self._executions.values())
        for execution in targets:
            execution.request_interrupt()
        hit = bool(targets)
        for forward in tuple(self._interrupt_forwards):  # prompts this engine's queue runs elsewhere (issue 15)
            hit = forward(prompt_id) or hit
        return hit

    def forward_interrupts(self, handler: Callable[[str | None], bool]) -> Callable[[], None]:
        """Also send `interrupt` calls to `handler` (a backend running this queue's prompts on other machines);
        returns the function that stops forwarding."""
        self._interrupt_forwards.append(handler)
        return lambda: self._interrupt_forwards.remove(handler) if handler in self._interrupt_forwards else None

    def subscribe(self, sink: EventSink) -> Callable[[], None]:
        """Receive every event of every prompt this engine runs; returns the unsubscribe function."""
        return self.bus.subscribe(sink)

    def _custom_message(self, event: str, data: Any, client_id: str | None) -> None:
        scope = current_scope()
        prompt_id = scope.prompt_id if scope else ""
        message = CustomMessage(prompt_id, event=event, data=data, client_id=client_id or (scope.client_id if scope else None))
        execution = self._executions.get(prompt_id)
        loop = self._loops.get(prompt_id)
        emit = execution.bus.emit if execution is not None else self.bus.emit
        if loop is not None and loop.is_running() and not _on_loop_thread(loop):
            loop.call_soon_threadsafe(emit, message)
        else:
            emit(message)

    # ---- the persistent queue -------------------------------------------------------------------------------------

    @property
    def queue(self) -> PromptQueue:
        with self._queue_lock:
            if self._queue is None:
                self._queue = PromptQueue(self.home.state_db, max_history=self.settings.max_history)
            return self._queue

    def submit(self, workflow: str | os.PathLike[str] | Mapping[str, Any], *, prompt_id: str | None = None,
               front: bool = False, number: float | None = None, extra_data: Mapping[str, Any] | None = None,
               outputs: Iterable[str] | None = None, strict: bool = False) -> QueueItem:
        """Validate and enqueue durably; the prompt survives a crash and runs when a worker gets to it.

        `front` puts it before everything pending; `number` is a priority (lower runs first), as in ComfyUI.
        """
        checked = self._checked(workflow, outputs, strict)
        return self.queue.put(checked.prompt, prompt_id=prompt_id, extra_data=dict(extra_data or {}),
                              outputs_to_execute=checked.runnable_outputs, front=front, number=number)

    async def submit_async(self, workflow: str | os.PathLike[str] | Mapping[str, Any], *,
                           prompt_id: str | None = None, front: bool = False, number: float | None = None,
                           extra_data: Mapping[str, Any] | None = None, outputs: Iterable[str] | None = None,
                           strict: bool = False) -> QueueItem:
        """`submit` for the event loop: the loop runs on while the prompt is written, and prompts submitted in the
        same instant share one transaction and one sync (the queue's group commit)."""
        checked = self._checked(workflow, outputs, strict)
        return await self.queue.put_async(checked.prompt, prompt_id=prompt_id, extra_data=dict(extra_data or {}),
                                          outputs_to_execute=checked.runnable_outputs, front=front, number=number)

    async def run_queued(self, item: QueueItem, sinks: Sequence[EventSink] = ()) -> RunResult:
        """Run a claimed queue item and move it into history, even if execution blew up."""
        result, _ = await self._run_queued(item, sinks, claim_next=False)
        return result

    async def run_queued_then_claim(self, item: QueueItem,
                                    sinks: Sequence[EventSink] = ()) -> tuple[RunResult, QueueItem | None]:
        """`run_queued`, and claim the next pending item in the same write that records this one's result (what a
        serial queue worker does next anyway); the claimed item, or None, comes back with the result."""
        return await self._run_queued(item, sinks, claim_next=True)

    async def _run_queued(self, item: QueueItem, sinks: Sequence[EventSink],
                          claim_next: bool) -> tuple[RunResult, QueueItem | None]:
        result = await self.execute_item(item, sinks)
        # written by the queue's writer thread (batched with whatever else is being written); the loop runs on
        claimed = await self.queue.finish_async(item, outputs=result.outputs, status=result.history_status(),
                                                meta=_meta_with_seconds(result.meta, result.timings),
                                                claim_next=claim_next)
        return result, claimed

    async def execute_item(self, item: QueueItem, sinks: Sequence[EventSink] = ()) -> RunResult:
        """Run a validated queue item without touching the queue: what `run_queued` and remote workers (issue 15)
        share. An engine bug becomes an error result, never an exception, so no queue is wedged by it."""
        client_id = item.extra_data.get("client_id") if isinstance(item.extra_data, Mapping) else None
        try:
            return await self._execute(item.prompt, item.outputs_to_execute, item.prompt_id, item.extra_data,
                                       sinks, client_id)
        except Exception as exc:
            logger.exception("prompt %s could not run", item.prompt_id)
            failure = ExecutionFailure("", "", str(exc), type(exc).__name__)
            return RunResult(item.prompt_id, "error", {}, {}, [], [], {}, failure,
                             [["execution_error", {"prompt_id": item.prompt_id, "exception_message": str(exc)}]])

    def place_nodes(self, placement: NodePlacement | None) -> None:
        """Send calls of resource-declaring nodes elsewhere (the Ray backend's node actors, issue 15); None: here."""
        self._services.placement = placement

    def layer_cache(self, wrap: Callable[[OutputCache], OutputCache]) -> None:
        """Put another cache around this engine's own, e.g. one shared by a pool of workers (issue 15). With the
        `none` strategy nothing is cached, so nothing is wrapped."""
        if not isinstance(self._services.cache, NoCache):
            self._services.cache = wrap(self._services.cache)

    async def serve_queue(self, stop: asyncio.Event, sinks: Sequence[EventSink] = ()) -> None:
        """Run queued prompts one at a time, in queue order, until `stop` is set."""
        item: QueueItem | None = None
        while not stop.is_set():
            if item is None:
                item = await self.queue.next(stop)
                if item is None:
                    return
            _, item = await self.run_queued_then_claim(item, sinks)
        if item is not None:  # claimed with the last result, but stopping: it stays first in line
            self.queue.unclaim(item)

    async def drain(self, sinks: Sequence[EventSink] = ()) -> list[RunResult]:
        """Run everything pending now (including prompts recovered after a crash), then return."""
        results = []
        while (item := self.queue.claim()) is not None:
            results.append(await self.run_queued(item, sinks))
        return results

    def loaded_models(self) -> list[LoadedModelInfo]:
        """Local models in memory now (name, path, bytes, last used), most recent first (issue 3, item 4)."""
        return self.host.models.loaded() if self.host.models is not None else []

    def clear_cache(self) -> None:
        """Forget everything remembered between runs: outputs, node instances, signatures, the last validation."""
        self._services.cache.clear()
        self._services.objects.clear()
        self._services.signature_memo = None
        self._validator.forget()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        self._pool.shutdown(wait=False, cancel_futures=True)
        isolated = getattr(self, "_isolated", None)  # isolated packs (issue 6, item 8): stop their workers
        if isolated is not None:
            isolated.close()
        if self._queue is not None:
            self._queue.close()
            self._queue = None
        if self.host.models is not None:  # issue 3, item 4: let the weights go with the engine
            self.host.models.clear()
        if self.host.usage is not None:  # issue 18: the ledger's connection
            self.host.usage.close()
        if self._services.tracing is not None:  # issue 18: send the spans still buffered
            self._services.tracing.shutdown()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _model_manager(settings: Settings) -> ModelManager:
    """The engine's model manager (issue 3, item 4), budgeted by `[models] memory_budget`. The manager holds
    whatever packs load through it, so the engine stays ignorant of what a model is. Imported on use, so
    `import partyflow` stays light."""
    from partyflow.llm.models import ModelManager, memory_budget

    return ModelManager(memory_budget(settings.raw))


def _meta_with_seconds(meta: dict[str, dict[str, Any]], timings: dict[str, float]) -> dict[str, dict[str, Any]]:
    """History `meta` as ComfyUI keys it (node id -> entry, nothing else: clients iterate it), each node's run time
    added inside its own entry."""
    return {node: {**entry, "seconds": timings[node]} if node in timings else entry for node, entry in meta.items()}


def _tracing(raw: Mapping[str, Any], home: Home) -> Tracing | None:
    """Traces over OTLP when config.toml has a `[telemetry]` table (issue 18, item 6); None (and nothing
    imported) otherwise, so an engine without it pays nothing."""
    if "telemetry" not in raw:
        return None
    from partyflow.telemetry import Tracing, parse_telemetry

    config = parse_telemetry(raw, str(home.config_file))
    return Tracing(config) if config is not None else None


def _model_services(home: Home) -> ModelServices:
    """Routers' health and the usage ledger (issue 18); the ledger opens on the first metered call."""
    from partyflow.llm.usage.services import ModelServices

    return ModelServices(home.root, home.state_db)


def _history_recorder(messages: list[list[Any]]) -> EventSink:
    def record(event: Event) -> None:
        if isinstance(event, _HISTORY_EVENTS):
            data = event.to_message()["data"]
            if isinstance(event, ExecutionCached):
                data = {"nodes": data["nodes"], "prompt_id": data["prompt_id"], "timestamp": data["timestamp"]}
            messages.append([event.type, data])
    record.wants = frozenset(_HISTORY_EVENTS)  # type: ignore[attr-defined]
    return record


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


__all__ = ["Engine", "PromptValidationError", "RunResult", "NodeRegistry", "HostContext"]


class PromptStream:
    """The events of one prompt as an async iterator; the run starts on the first `__anext__`."""

    def __init__(self, run: Callable[..., Any], workflow: Any, options: dict[str, Any]) -> None:
        self._run, self._workflow, self._options = run, workflow, options
        self._events: asyncio.Queue[Any] | None = None
        self._task: asyncio.Task[RunResult] | None = None
        self.result: RunResult | None = None

    def __aiter__(self) -> PromptStream:
        return self

    async def __anext__(self) -> Event:
        if self._task is None:
            self._start()
        assert self._events is not None and self._task is not None
        item = await self._events.get()
        if item is _STREAM_END:
            self.result = self._task.result()  # re-raises PromptValidationError and the like
            raise StopAsyncIteration
        return item

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Any] = asyncio.Queue()
        thread = threading.get_ident()

        def put(event: Event) -> None:  # custom messages may come from node threads
            if threading.get_ident() == thread:
                events.put_nowait(event)
            else:
                loop.call_soon_threadsafe(events.put_nowait, event)

        sinks = [*self._options.pop("sinks", ()), put]
        self._events = events
        self._task = loop.create_task(self._run(self._workflow, sinks=sinks, **self._options))
        self._task.add_done_callback(lambda _: events.put_nowait(_STREAM_END))


_STREAM_END = object()


def _parallel_packs(raw: Mapping[str, Any]) -> frozenset[str]:
    """Packs whose sync nodes may overlap others: `[packs.<folder>] parallel = true` in config.toml (issue 20)."""
    packs = raw.get("packs")
    if not isinstance(packs, Mapping):
        return frozenset()
    return frozenset(name for name, table in packs.items()
                     if isinstance(table, Mapping) and table.get("parallel") is True)
