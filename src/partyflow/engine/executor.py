"""Execution of one validated prompt: ready nodes run concurrently, cached ones are skipped.

The executor walks back from the output nodes, marking what must run (a cache hit stops the walk, so a
cached node's ancestors never run), and then runs every node whose inputs are ready. Async node functions
are awaited on the loop; sync ones run in worker threads, except classes whose calls have proven to take
microseconds, which run inline because a thread hop would cost more than the node (see `CallSpeeds`).
Lazy inputs, list mapping, graph expansion and ExecutionBlocker follow ComfyUI's semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
import threading
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from partyflow.engine.cache import NoCache, NodeResult, OutputCache, fingerprint, signature
from partyflow.engine.calls import CallSpeeds, accepted, find_blocker, map_calls, unwrap
from partyflow.engine.events import (
    EventBus,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
)
from partyflow.engine.failures import ExecutionFailure, NodeExecutionError, NodeInterrupted, is_interrupt
from partyflow.engine.returns import check_expanded_node, check_output_types, merge_outputs, normalise
from partyflow.graph.dynamic import DynamicPrompt
from partyflow.nodes.host import HostContext, NodeScope, enter_scope, host_context, leave_scope, node_scope
from partyflow.nodes.protocol import NodeDefinition, NodeDefinitionError
from partyflow.nodes.registry import NodeRegistry
from partyflow.nodes.values import ExecutionBlocker, is_link

if TYPE_CHECKING:
    from partyflow.telemetry import Tracing

logger = logging.getLogger("partyflow.executor")
_NO_SPAN = contextlib.nullcontext()  # reusable: what a node call runs in when tracing is off

Status = Literal["success", "error", "interrupted"]
_YIELD_EVERY = 64  # inline nodes run back to back before the loop gets a turn


@dataclass
class ExecutionOutcome:
    status: Status
    results: dict[str, NodeResult]
    ui: dict[str, dict[str, Any]]
    executed: list[str]
    cached: list[str]
    timings: dict[str, float]
    meta: dict[str, dict[str, Any]]
    failure: ExecutionFailure | None = None
    interrupted_node: str | None = None


class NodePlacement(Protocol):
    """Runs some node classes somewhere else (another process or machine with the resources they declare).

    `wants` is asked once per class; `call` gets the node's already mapped calls and returns their raw results
    and the seconds they took, or raises like a node would (NodeExecutionError for a placement problem).
    """

    def wants(self, definition: NodeDefinition) -> bool: ...

    async def call(self, definition: NodeDefinition, prompt_id: str, node_id: str,
                   calls: list[dict[str, Any]]) -> tuple[list[Any], float]: ...


@dataclass
class ExecutionServices:
    """What an engine lends each prompt it runs (no globals: two engines never share these)."""

    registry: NodeRegistry
    host: HostContext
    cache: OutputCache
    pool: Executor
    speeds: CallSpeeds = field(default_factory=CallSpeeds)
    objects: dict[tuple[str, type], Any] = field(default_factory=dict)  # node instances, as ComfyUI keeps them
    # (prompt, signatures) of the last run: an identical prompt object (the validator hands back the same one for
    # an unchanged workflow) without IS_CHANGED nodes has the same signatures, so they are not hashed again
    signature_memo: tuple[Mapping[str, Any], dict[str, str]] | None = None
    # third-party packs keep ComfyUI's one-node-at-a-time semantics (issue 20): their sync calls take this lock,
    # except packs listed here (`[packs.<folder>] parallel = true`) and nodes with CONCURRENCY_LIMIT or async
    parallel_packs: frozenset[str] = frozenset()
    pack_lock: threading.Lock = field(default_factory=threading.Lock)
    placement: NodePlacement | None = None  # where resource-declaring nodes run (None: here; issue 15)
    tracing: Tracing | None = None  # issue 18, item 6: a span per prompt and node when [telemetry] is configured
    _serial: dict[type, bool] = field(default_factory=dict)

    def serialized(self, definition: NodeDefinition) -> bool:
        """Whether calls of this node class must not overlap other third-party sync calls."""
        known = self._serial.get(definition.cls)
        if known is None:
            module = definition.python_module
            pack = module.partition(".")[2].split(".")[0] if module.startswith("custom_nodes.") else None
            entry = self.registry.entry(definition.class_type) if definition.class_type in self.registry else None
            folder = entry.pack if entry is not None else pack
            known = (pack is not None and not definition.is_async and definition.concurrency_limit is None
                     and folder not in self.parallel_packs and pack not in self.parallel_packs)
            self._serial[definition.cls] = known
        return known


class _NodeState:
    """Book-keeping for one pending node; slotted, since a run makes one per node."""

    __slots__ = ("blockers", "expanded", "lazy_checked", "expansion_results", "ui", "seconds")

    def __init__(self) -> None:
        self.blockers = 0
        self.expanded = False
        self.lazy_checked = 0
        self.expansion_results: list[tuple[Any, ...]] = []
        self.ui: dict[str, Any] | None = None
        self.seconds = 0.0


@dataclass(slots=True)
class _Prepared:
    definition: NodeDefinition
    instance: Any
    calls: list[dict[str, Any]]


_MAX_SHOWN_VALUES = 50
_MAX_SHOWN_TEXT = 2000


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_SHOWN_TEXT else text[:_MAX_SHOWN_TEXT] + "..."


class PromptExecution:
    """One run of one prompt. Create, `await run()`, read the outcome."""

    def __init__(self, prompt: Mapping[str, Mapping[str, Any]], *, prompt_id: str, outputs: Iterable[str],
                 services: ExecutionServices, bus: EventBus, interrupt: threading.Event | None = None,
                 extra_data: Mapping[str, Any] | None = None, client_id: str | None = None) -> None:
        self.prompt = prompt
        self.prompt_id = prompt_id
        self.targets = list(outputs)
        self.services = services
        self.bus = bus
        self.interrupt = interrupt or threading.Event()
        self.extra_data = dict(extra_data or {})
        self._user, self._workflow = _labels(self.extra_data)
        self.client_id = client_id
        self.dyn = DynamicPrompt(prompt)
        self._defs: dict[str, NodeDefinition] = {}
        self._sigs: dict[str, str] = {}
        self._parsed_links: dict[str, list[tuple[str, str, int]]] = {}
        self._recalled = False
        self._is_changed: dict[str, str] = {}
        self.results: dict[str, NodeResult] = {}
        self._state: dict[str, _NodeState] = {}
        self._dependents: dict[str, list[str]] = defaultdict(list)
        self._ready: deque[str] = deque()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wakeup: asyncio.Event | None = None
        self._limits: dict[str, asyncio.Semaphore] = {}
        self.executed: list[str] = []
        self.cached: list[str] = []
        self.timings: dict[str, float] = {}
        self.ui: dict[str, dict[str, Any]] = {}
        self.failure: ExecutionFailure | None = None
        self._interrupted_node: str | None = None
        self._node_events = bus.wants(Executing) or bus.wants(Executed)
        self._caching = not isinstance(services.cache, NoCache)  # `none` never needs a signature
        self._tracing = services.tracing
        self._root_context: Any = None  # the root span's context, the parent of node spans in any thread

    def request_interrupt(self) -> None:
        """Stop this prompt; safe from any thread. Wakes the scheduler, which cancels what still runs."""
        self.interrupt.set()
        loop = getattr(self, "_loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    # ---- the run -------------------------------------------------------------------------------------------

    async def run(self) -> ExecutionOutcome:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wakeup = asyncio.Event()
        self._emit(ExecutionStart(self.prompt_id))
        self.services.cache.begin_prompt()
        if self._tracing is None:
            await self._run_prompt()
            return self._finish()
        return await self._run_traced(self._tracing)

    async def _run_traced(self, tracing: Tracing) -> ExecutionOutcome:
        """The run under a root span (a child of the current span when a node runs this prompt as a tool, so a
        nested workflow joins its caller's trace); nodes' spans hang below it, whatever thread runs them."""
        name = self._workflow or "partyflow"
        span = tracing.start(f"invoke_workflow {name}", {
            "gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": name,
            "partyflow.prompt.id": self.prompt_id, "partyflow.prompt.nodes": len(self.prompt)})
        self._root_context = tracing.context_of(span)
        tokens = tracing.enter(span)
        started = time.perf_counter()
        try:
            await self._run_prompt()
            outcome = self._finish()
        except BaseException as exc:  # cancelled (the server stopping) or an engine fault: still a finished span
            from partyflow.telemetry import fail

            fail(span, exc)
            span.set_attribute("partyflow.latency", time.perf_counter() - started)
            span.end()
            raise
        finally:
            tracing.leave(tokens)
        span.set_attributes({"partyflow.status": outcome.status, "partyflow.nodes.executed": len(outcome.executed),
                             "partyflow.nodes.cached": len(outcome.cached),
                             "partyflow.latency": time.perf_counter() - started})
        if outcome.failure is not None:
            from partyflow.telemetry import mark_error

            failure = outcome.failure
            mark_error(span, f"node {failure.node_id} ({failure.class_type}): {failure.exception_type}",
                       failure.exception_type)
            span.set_attribute("partyflow.failed_node.id", failure.node_id)
        span.end()
        return outcome

    def _node_span(self, node_id: str, definition: NodeDefinition, calls: int) -> Any:
        """The context a node's calls run in: its span, current (or nothing when tracing is off)."""
        if self._tracing is None:
            return _NO_SPAN
        display = self.dyn.get_display_node_id(node_id)
        return self._tracing.span(f"execute_node {definition.class_type}", {
            "partyflow.node.id": node_id, "partyflow.node.type": definition.class_type,
            "partyflow.node.display_id": display if display != node_id else None,
            "partyflow.node.calls": calls if calls != 1 else None, "partyflow.prompt.id": self.prompt_id},
            parent=self._root_context)

    async def _run_prompt(self) -> None:
        with host_context(self.services.host):
            try:
                self._recall_signatures()
                prefetch = getattr(self.services.cache, "prefetch", None) if self._caching else None
                if prefetch is not None:  # a remote cache (issue 15): ask for every signature in one round trip
                    for target in self.targets:
                        self._signature(target)  # the walk computes these anyway: ancestors included
                    prefetch(list(self._sigs.values()))
                for target in self.targets:
                    self._need(target)
            except NodeExecutionError as exc:
                self._fail(target, exc)
            if self.bus:  # sent even when empty, as ComfyUI does
                self._emit(ExecutionCached(self.prompt_id, nodes=self._all_cached()))
            if self._node_events:  # cached results are shown again, as ComfyUI re-sends them
                for node_id in self.cached:
                    if node_id in self.ui:
                        self._emit(Executed(self.prompt_id, node=node_id,
                                            display_node=self.dyn.get_display_node_id(node_id), output=self.ui[node_id]))
            await self._drive()

    def _all_cached(self) -> list[str]:
        """Every node whose output the cache holds, as ComfyUI lists them: the hits, and their ancestors (which a hit
        spares from even being looked at) when the cache still has them too."""
        listed = list(self.cached)
        if not self._caching:
            return listed
        for node_id, key in self._sigs.items():
            if node_id not in self.results and node_id not in self._state \
                    and self.services.cache.get(key) is not None:
                listed.append(node_id)
        return listed

    async def _drive(self) -> None:
        inline_streak = 0
        while self.failure is None:
            if self.interrupt.is_set():
                self._interrupted_node = next(iter(self._tasks), None)
                break
            if self._ready:
                node_id = self._ready.popleft()
                if self._start(node_id):
                    inline_streak += 1
                    if inline_streak >= _YIELD_EVERY:
                        inline_streak = 0
                        await asyncio.sleep(0)
                continue
            if not self._tasks:
                self._check_stalled()
                break
            inline_streak = 0
            assert self._wakeup is not None
            await self._wakeup.wait()
            self._wakeup.clear()
        await self._cancel_running()

    def _check_stalled(self) -> None:
        """Nothing runs and nothing is ready: unless every target is done, the graph cannot make progress."""
        waiting = [n for n, s in self._state.items() if n not in self.results]
        if waiting and self.failure is None:
            self._fail(waiting[0], NodeExecutionError(
                f"execution cannot proceed: nodes {', '.join(sorted(waiting)[:10])} wait on each other "
                "(a dependency cycle, probably created by node expansion)", exception_type="DependencyCycleError"))

    async def _cancel_running(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _finish(self) -> ExecutionOutcome:
        status: Status = "success"
        if self.failure is not None:
            status = "error"
            self._emit(ExecutionError(
                self.prompt_id, node_id=self.failure.node_id, node_type=self.failure.class_type,
                executed=self._shown(self.executed), exception_message=self.failure.message,
                exception_type=self.failure.exception_type, traceback=self.failure.traceback.splitlines(True),
                current_inputs=self._inputs_of(self.failure.node_id), current_outputs=self._shown(list(self.results))))
        elif self.interrupt.is_set() and not all(t in self.results for t in self.targets):
            status = "interrupted"
            node_id = self._interrupted_node
            node_type = self.dyn.get_node(node_id)["class_type"] if node_id else None
            self._emit(ExecutionInterrupted(self.prompt_id, node_id=node_id, node_type=node_type,
                                            executed=self._shown(self.executed)))
        else:
            self._emit(ExecutionSuccess(self.prompt_id))
        self.services.cache.end_prompt(self._sigs.values(),  # cached hits' ancestors stay valid too
                                       unchanged=self._recalled and not self.executed)
        self._remember_signatures()
        meta = {n: {"node_id": n, "display_node": self.dyn.get_display_node_id(n),
                    "parent_node": self.dyn.get_parent_node_id(n), "real_node_id": self.dyn.get_real_node_id(n)}
                for n in self.ui}
        return ExecutionOutcome(status, self.results, self.ui, self.executed, self.cached, self.timings, meta,
                                self.failure, self._interrupted_node)

    def _inputs_of(self, node_id: str) -> dict[str, list[Any]]:
        """The values a failed node was given, formatted as ComfyUI reports them (plain values as they are, anything
        else as its text, cut short), for the error panel."""
        if not node_id or not self.dyn.has_node(node_id):
            return {}
        shown: dict[str, list[Any]] = {}
        for name, value in self.dyn.get_node(node_id).get("inputs", {}).items():
            if is_link(value):
                result = self.results.get(value[0])
                if result is None or not isinstance(value[1], int) or value[1] >= len(result.outputs):
                    continue
                values = list(result.outputs[value[1]])
            else:
                values = [value]
            shown[name] = [_format_value(v) for v in values[:_MAX_SHOWN_VALUES]]
        return shown

    def _shown(self, node_ids: list[str]) -> list[str]:
        """Node ids as the prompt shows them (expanded nodes by their display node), each once: a message listing
        what ran stays the size of the prompt however many passes a loop made."""
        return list(dict.fromkeys(self.dyn.get_display_node_id(n) for n in node_ids))

    def _recall_signatures(self) -> None:
        memo = self.services.signature_memo
        if memo is not None and memo[0] is self.prompt:
            self._sigs.update(memo[1])
            self._recalled = True

    def _remember_signatures(self) -> None:
        volatile = any(d.has_is_changed for d in self._defs.values())
        if not self._caching or volatile or self.failure is not None:
            self.services.signature_memo = None
        elif not self._recalled:  # a recalled memo is already exactly this prompt's
            self.services.signature_memo = (self.prompt, {n: s for n, s in self._sigs.items() if n in self.prompt})

    # ---- deciding what must run ---------------------------------------------------------------------------

    def _need(self, root: str) -> None:
        """Mark `root` and the uncached ancestors it waits on as pending (iteratively; chains can be long)."""
        stack = [root]
        while stack:
            node_id = stack.pop()
            if node_id in self.results or node_id in self._state:
                continue
            hit = self.services.cache.get(self._signature(node_id)) if self._caching else None
            if hit is not None:
                self.results[node_id] = hit
                self.cached.append(node_id)
                if hit.ui is not None:
                    self.ui[node_id] = hit.ui
                self._resolved(node_id)
                continue
            state = self._state[node_id] = _NodeState()
            lazy = self._definition(node_id, self.dyn.get_node(node_id)["class_type"]).lazy_inputs
            for name, source, _ in self._links(node_id):
                if source in self.results or (lazy and name in lazy):
                    continue
                self._wait_for(node_id, state, source)
                stack.append(source)
            if state.blockers == 0:
                self._ready.append(node_id)

    def _links(self, node_id: str) -> list[tuple[str, str, int]]:
        """(input, source node, output index) of each linked input; parsed once per node and run."""
        links = self._parsed_links.get(node_id)
        if links is None:
            inputs = self.dyn.get_node(node_id)["inputs"]
            links = self._parsed_links[node_id] = [(k, v[0], v[1]) for k, v in inputs.items() if is_link(v)]
        return links

    def _wait_for(self, node_id: str, state: _NodeState, dependency: str) -> None:
        if dependency not in self.prompt and not self.dyn.has_node(dependency):  # validated nodes need no lookup
            raise NodeExecutionError(f"node {node_id} links to node {dependency!r}, which is not in the prompt")
        state.blockers += 1
        self._dependents[dependency].append(node_id)

    def _resolved(self, node_id: str) -> None:
        """`node_id` has its result: unblock whatever waits on it."""
        for dependent in self._dependents.pop(node_id, ()):
            state = self._state[dependent]
            state.blockers -= 1
            if state.blockers == 0:
                self._ready.append(dependent)  # an expanded node completes from the loop: no recursion

    def _definition(self, node_id: str, class_type: str) -> NodeDefinition:
        definition = self._defs.get(class_type)
        if definition is None:
            if class_type not in self.services.registry:
                raise NodeExecutionError(f"node {node_id}: node type {class_type!r} is not installed",
                                         exception_type="MissingNodeType")
            try:
                definition = self.services.registry.definition(class_type)
            except NodeDefinitionError as exc:
                raise NodeExecutionError(str(exc), exception_type="NodeDefinitionError") from exc
            self._defs[class_type] = definition
        return definition

    def _signature(self, root: str) -> str:
        """Input signature of `root`, computing its ancestors' first (iteratively)."""
        if root in self._sigs:
            return self._sigs[root]
        stack, entered = [root], set()
        while stack:
            node_id = stack[-1]
            if node_id in self._sigs:
                stack.pop()
                continue
            node = self.dyn.get_node(node_id)
            missing = [source for _, source, _ in self._links(node_id)
                       if source not in self._sigs and self.dyn.has_node(source)]
            if missing and node_id not in entered:
                entered.add(node_id)
                stack.extend(missing)
                continue
            if missing:
                raise NodeExecutionError(f"node {node_id} is part of a dependency cycle",
                                         exception_type="DependencyCycleError")
            self._sigs[node_id] = self._compute_signature(node_id, node)
            stack.pop()
        return self._sigs[root]

    def _compute_signature(self, node_id: str, node: Mapping[str, Any]) -> str:
        class_type = node["class_type"]
        definition = self._definition(node_id, class_type)
        parts = [class_type]
        if definition.not_idempotent or "UNIQUE_ID" in definition.hidden.values():
            parts.append(f"#{node_id}")
        if definition.has_is_changed:
            parts.append(f"?{self._is_changed_value(node_id, node, definition)}")
        for name in sorted(node["inputs"]):
            value = node["inputs"][name]
            if is_link(value):
                upstream = self._sigs.get(value[0], f"missing:{value[0]}")
                parts.append(f"{name}>{upstream}:{value[1]}")
            else:
                parts.append(f"{name}={fingerprint(value)}")
        return signature(parts)

    def _is_changed_value(self, node_id: str, node: Mapping[str, Any], definition: NodeDefinition) -> str:
        """IS_CHANGED with the node's constant inputs; an exception counts as 'always changed' (ComfyUI's rule)."""
        constants = {k: v for k, v in node["inputs"].items() if not is_link(v)}
        method = definition.cls.IS_CHANGED
        try:
            value = method(**accepted(method, constants, definition))
        except Exception as exc:
            logger.warning("IS_CHANGED of node %s (%s) raised %s: %s; it will re-execute", node_id,
                           definition.class_type, type(exc).__name__, exc)
            value = math.nan
        return fingerprint(value)

    # ---- running one node -------------------------------------------------------------------------------

    def _start(self, node_id: str) -> bool:
        """Start `node_id`; returns True if it ran inline (finished already)."""
        if self._state[node_id].expanded:
            self._complete_expansion(node_id)
            return True
        try:
            prepared = self._prepare(node_id)
        except NodeExecutionError as exc:
            self._fail(node_id, exc)
            return True
        except Exception as exc:
            self._fail(node_id, exc)
            return True
        if prepared is None:
            return True
        definition = prepared.definition
        display = self.dyn.get_display_node_id(node_id)
        if self._node_events:
            self._emit(Executing(self.prompt_id, node=node_id, display_node=display))
        if self.services.placement is not None and self.services.placement.wants(definition):
            self._tasks[node_id] = self._loop.create_task(self._run_placed(node_id, prepared))
            return False
        if (not definition.is_async and definition.concurrency_limit is None and self.services.speeds.inline(definition.cls)
                and not self.services.serialized(definition)):
            function = getattr(prepared.instance, definition.function)
            token = enter_scope(self._scope(node_id, 0))
            started = time.perf_counter()
            try:
                if self._tracing is None:  # the hot path: trivial nodes pay nothing for tracing being available
                    raw = [function(**kwargs) for kwargs in prepared.calls]
                else:
                    with self._node_span(node_id, definition, len(prepared.calls)):
                        raw = [function(**kwargs) for kwargs in prepared.calls]
            except BaseException as exc:
                self._node_failed(node_id, exc)
                return True
            finally:
                leave_scope(token)
            seconds = time.perf_counter() - started
            self.services.speeds.record(definition.cls, seconds / max(1, len(prepared.calls)))
            self._node_returned(node_id, prepared, raw, seconds)
            return True
        self._tasks[node_id] = self._loop.create_task(self._run_async(node_id, prepared))
        return False

    async def _run_async(self, node_id: str, prepared: _Prepared) -> None:
        definition = prepared.definition
        limit = self._limit(definition)
        try:
            if limit is not None:
                await limit.acquire()
            try:
                started = time.perf_counter()
                if definition.is_async:
                    function = getattr(prepared.instance, definition.function)
                    raw = []
                    with self._node_span(node_id, definition, len(prepared.calls)):
                        for index, kwargs in enumerate(prepared.calls):
                            enter_scope(self._scope(node_id, index))  # this task's own context: nothing to reset
                            raw.append(await function(**kwargs))
                    seconds = time.perf_counter() - started
                else:
                    raw, seconds = await self._loop.run_in_executor(self.services.pool, self._call_in_thread, node_id,
                                                                    prepared)
            finally:
                if limit is not None:
                    limit.release()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._tasks.pop(node_id, None)
            self._node_failed(node_id, exc)
            self._wake()
            return
        self._tasks.pop(node_id, None)
        if not definition.is_async:
            self.services.speeds.record(definition.cls, seconds / max(1, len(prepared.calls)))
        if self.failure is None and not self.interrupt.is_set():
            self._node_returned(node_id, prepared, raw, seconds)
        self._wake()

    async def _run_placed(self, node_id: str, prepared: _Prepared) -> None:
        """A node whose class declared resources: its calls run where the placement puts them (issue 15)."""
        assert self.services.placement is not None
        try:
            with self._node_span(node_id, prepared.definition, len(prepared.calls)):
                raw, seconds = await self.services.placement.call(prepared.definition, self.prompt_id, node_id,
                                                                  prepared.calls)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._tasks.pop(node_id, None)
            self._node_failed(node_id, exc)
            self._wake()
            return
        self._tasks.pop(node_id, None)
        if self.failure is None and not self.interrupt.is_set():
            self._node_returned(node_id, prepared, raw, seconds)
        self._wake()

    def _call_in_thread(self, node_id: str, prepared: _Prepared) -> tuple[list[Any], float]:
        """Runs in a worker thread; times only the calls, so waiting in the pool's queue is not held against them."""
        function = getattr(prepared.instance, prepared.definition.function)
        results = []
        lock = self.services.pack_lock if self.services.serialized(prepared.definition) else contextlib.nullcontext()
        with lock:
            started = time.perf_counter()
            self._calls(node_id, prepared, function, results)
            return results, time.perf_counter() - started

    def _calls(self, node_id: str, prepared: _Prepared, function: Any, results: list[Any]) -> None:
        with host_context(self.services.host), self._node_span(node_id, prepared.definition, len(prepared.calls)):
            for index, kwargs in enumerate(prepared.calls):
                if self.interrupt.is_set():
                    raise NodeInterrupted("interrupted")
                with node_scope(self._scope(node_id, index)):
                    results.append(function(**kwargs))

    def _limit(self, definition: NodeDefinition) -> asyncio.Semaphore | None:
        if definition.concurrency_limit is None:
            return None
        group = definition.concurrency_group
        if group not in self._limits:
            self._limits[group] = asyncio.Semaphore(definition.concurrency_limit)
        return self._limits[group]

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _scope(self, node_id: str, call_index: int) -> NodeScope:
        return NodeScope(self.prompt_id, node_id, functools.partial(self._report_progress, node_id), self.interrupt,
                         self.client_id, call_index, self._user, self._workflow)

    def _report_progress(self, node_id: str, value: float, total: float, preview: Any = None) -> None:
        """Called by node code on any thread; events are emitted on the loop's thread."""
        # the display node, as ComfyUI's progress hook reports it (its last_node_id): a loop copy's bar shows on
        # the node it copies
        event = Progress(self.prompt_id, node=self.dyn.get_display_node_id(node_id), value=value, max=total)
        if threading.get_ident() == self._loop_thread:
            self._emit(event)
        else:
            self._loop.call_soon_threadsafe(self._emit, event)

    # ---- inputs ---------------------------------------------------------------------------------------------

    def _prepare(self, node_id: str) -> _Prepared | None:
        """Gather inputs and settle lazy ones; None means the node waits (more inputs) or was blocked."""
        node = self.dyn.get_node(node_id)
        definition = self._definition(node_id, node["class_type"])
        inputs = self._gather_inputs(node_id, node, definition)
        blocker = find_blocker(inputs)
        if blocker is not None:
            self._blocked(node_id, definition, blocker)
            return None
        instance = self._instance(node_id, definition)
        hidden = self._hidden_values(node_id, definition)
        calls = map_calls(definition, inputs, hidden)
        if definition.has_lazy_inputs and hasattr(instance, "check_lazy_status"):
            if self._request_lazy(node_id, node, definition, instance, calls):
                return None
        return _Prepared(definition, instance, calls)

    def _gather_inputs(self, node_id: str, node: Mapping[str, Any], definition: NodeDefinition) -> dict[str, list[Any]]:
        inputs: dict[str, list[Any]] = {}
        declared, raw_links = definition.inputs, definition.raw_link_inputs
        for name, value in node["inputs"].items():
            if name not in declared:
                continue
            if not is_link(value):
                inputs[name] = [unwrap(value) if type(value) is dict else value]
            elif raw_links and name in raw_links:
                inputs[name] = [list(value)]
            elif value[0] in self.results:
                outputs = self.results[value[0]].outputs
                if not 0 <= value[1] < len(outputs):
                    raise NodeExecutionError(f"input {name!r} links to output {value[1]} of node {value[0]}, "
                                             f"which has {len(outputs)} output(s)")
                inputs[name] = outputs[value[1]]
            else:
                inputs[name] = [None]  # a lazy input nobody asked for yet
        return inputs

    def _hidden_values(self, node_id: str, definition: NodeDefinition) -> dict[str, Any]:
        if not definition.hidden:
            return {}
        values: dict[str, Any] = {}
        for name, kind in definition.hidden.items():
            if kind == "PROMPT":
                values[name] = self.prompt
            elif kind == "UNIQUE_ID":
                values[name] = node_id
            elif kind == "EXTRA_PNGINFO":
                values[name] = self.extra_data.get("extra_pnginfo")
            elif kind == "DYNPROMPT":
                values[name] = self.dyn
            else:
                values[name] = None
        return values

    def _instance(self, node_id: str, definition: NodeDefinition) -> Any:
        key = (node_id, definition.cls)
        instance = self.services.objects.get(key)
        if instance is None:
            instance = self.services.objects[key] = definition.cls()
        return instance

    def _request_lazy(self, node_id: str, node: Mapping[str, Any], definition: NodeDefinition, instance: Any,
                      calls: list[dict[str, Any]]) -> bool:
        """Ask check_lazy_status which unevaluated inputs it needs; queue them. True if the node must wait."""
        state = self._state[node_id]
        state.lazy_checked += 1
        if state.lazy_checked > 1000:
            raise NodeExecutionError("check_lazy_status keeps asking for inputs that are already evaluated")
        wanted: list[str] = []
        for kwargs in calls:
            with node_scope(self._scope(node_id, 0)):
                needed = instance.check_lazy_status(**kwargs)
            if inspect.isawaitable(needed):
                raise NodeExecutionError("check_lazy_status must be a plain (sync) method in partyflow")
            wanted.extend(needed or ())
        pending = []
        for name in dict.fromkeys(wanted):
            value = node["inputs"].get(name)
            if is_link(value) and value[0] not in self.results:
                pending.append(value[0])
        for dependency in pending:
            self._wait_for(node_id, state, dependency)
        for dependency in pending:
            self._need(dependency)
        return bool(pending)

    def _blocked(self, node_id: str, definition: NodeDefinition, blocker: ExecutionBlocker) -> None:
        if blocker.message is not None:
            self._fail(node_id, NodeExecutionError(blocker.message, exception_type="ExecutionBlocked"))
            return
        self._store(node_id, NodeResult(tuple([blocker] for _ in definition.return_types)), cache=False)

    # ---- results --------------------------------------------------------------------------------------------

    def _node_returned(self, node_id: str, prepared: _Prepared, raw: list[Any], seconds: float) -> None:
        definition = prepared.definition
        state = self._state[node_id]
        state.seconds = seconds
        if len(raw) == 1 and type(raw[0]) is tuple and len(raw[0]) == len(definition.return_types) \
                and not definition.any_output_is_list:  # the common case: one call returning a plain tuple
            self.executed.append(node_id)
            self._complete(node_id, definition, tuple([value] for value in raw[0]))
            return
        try:
            values, ui, graphs = normalise(definition, raw)
        except NodeExecutionError as exc:
            self._fail(node_id, exc)
            return
        self.executed.append(node_id)
        state.ui = ui
        if graphs:
            try:
                self._expand(node_id, definition, values, graphs)
            except NodeExecutionError as exc:
                self._fail(node_id, exc)
            return
        self._complete(node_id, definition, merge_outputs(definition, values, self.results))

    def _complete(self, node_id: str, definition: NodeDefinition, outputs: tuple[list[Any], ...]) -> None:
        state = self._state[node_id]
        try:
            check_output_types(definition, outputs)
        except NodeExecutionError as exc:
            self._fail(node_id, exc)
            return
        self.timings[node_id] = state.seconds
        self._store(node_id, NodeResult(outputs, state.ui), cache=True)
        if self._node_events:
            self._emit(Executed(self.prompt_id, node=node_id, display_node=self.dyn.get_display_node_id(node_id),
                                output=state.ui, seconds=state.seconds))

    def _store(self, node_id: str, result: NodeResult, *, cache: bool) -> None:
        self.results[node_id] = result
        if result.ui is not None:
            self.ui[node_id] = result.ui
        if cache and node_id in self._sigs:
            self.services.cache.put(self._sigs[node_id], result)
        self._resolved(node_id)

    def _expand(self, node_id: str, definition: NodeDefinition, values: list[tuple[Any, ...]],
                graphs: list[Mapping[str, Any]]) -> None:
        """Insert the returned subgraphs; the node's outputs are resolved once the links it returned are."""
        display = self.dyn.get_display_node_id(node_id)
        new_outputs: list[str] = []
        for graph in graphs:
            for new_id, info in graph.items():
                check_expanded_node(node_id, new_id, info, self.dyn)
                # As ComfyUI: a node may show its progress on another (a loop body copy on the node it copies)
                override = info.get("override_display_id")
                shown = self.dyn.get_display_node_id(override) if isinstance(override, str) \
                    and self.dyn.has_node(override) else display
                self.dyn.add_ephemeral_node(new_id, info, node_id, shown)
                if self._definition(new_id, info["class_type"]).output_node:
                    new_outputs.append(new_id)
        state = self._state[node_id]
        state.expanded = True
        state.expansion_results = values
        links = {v[0] for result in values for v in result if is_link(v)}
        for link in links:
            if link not in self.results:
                self._wait_for(node_id, state, link)
        for link in links:
            self._need(link)
        for output in new_outputs:
            self._need(output)
        if state.blockers == 0:
            self._complete_expansion(node_id)

    def _complete_expansion(self, node_id: str) -> None:
        state = self._state[node_id]
        definition = self._defs[self.dyn.get_node(node_id)["class_type"]]
        self._complete(node_id, definition, merge_outputs(definition, state.expansion_results, self.results))

    # ---- failures and events --------------------------------------------------------------------------------

    def _node_failed(self, node_id: str, exc: BaseException) -> None:
        if is_interrupt(exc):
            self.interrupt.set()
            self._interrupted_node = node_id
            return
        self._fail(node_id, exc)

    def _fail(self, node_id: str, exc: BaseException) -> None:
        if self.failure is not None:
            return
        class_type = ""
        if self.dyn.has_node(node_id):
            class_type = str(self.dyn.get_node(node_id).get("class_type", ""))
        exception_type = getattr(exc, "exception_type", None) or f"{type(exc).__module__}.{type(exc).__qualname__}"
        exception_type = exception_type.removeprefix("builtins.")
        text = "".join(traceback.format_exception(exc)) if not isinstance(exc, NodeExecutionError) else ""
        self.failure = ExecutionFailure(node_id, class_type, str(exc) or type(exc).__name__, exception_type, text)
        if text:
            logger.error("node %s (%s) failed:\n%s", node_id, class_type, text)

    def _emit(self, event: Any) -> None:
        if self.bus:
            self.bus.emit(event)


def _labels(extra_data: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Who queued a prompt (the server writes `partyflow_user`) and the editor workflow it came from."""
    user = extra_data.get("partyflow_user")
    info = extra_data.get("extra_pnginfo")
    workflow = info.get("workflow") if isinstance(info, Mapping) else None
    workflow_id = workflow.get("id") if isinstance(workflow, Mapping) else None
    return (user if isinstance(user, str) else None, workflow_id if isinstance(workflow_id, str) else None)
