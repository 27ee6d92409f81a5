"""Jobs: the queue and history seen as one list, in the shape the ComfyUI frontend's queue panel reads (`/api/jobs`).

A job is a prompt in one of five states: `pending` and `in_progress` (the persistent queue), `completed`, `failed`
and `cancelled` (history; cancelled covers an interrupted run and a pending prompt cancelled before it ran).
ComfyUI 0.3.75 knows only the first four and reports an interrupted run as failed; the frontend's schema already
has `cancelled`, which is the truthful answer, so partyflow gives it.

History pages are filtered, sorted and cut inside SQLite (`PromptQueue.history_page`); only the queue's own items
(few, and held in memory by nobody) are merged here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from partyflow.engine.queue import HistorySummary, PromptQueue, QueueItem

STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")
FINISHED = ("completed", "failed", "cancelled")
SORT_KEYS = ("created_at", "execution_duration")
PREVIEWABLE = frozenset({"images", "video", "audio"})
_THREE_D = (".obj", ".fbx", ".gltf", ".glb")


class JobQueryError(ValueError):
    """A listing request with a bad parameter; the route answers 400 with this message."""


@dataclass(frozen=True)
class JobQuery:
    statuses: tuple[str, ...] = STATUSES
    workflow_id: str | None = None
    sort_by: str = "created_at"
    newest_first: bool = True
    limit: int | None = None
    offset: int = 0

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> JobQuery:
        """From `?status=a,b&workflow_id&sort_by&sort_order&limit&offset`; raises JobQueryError naming the field."""
        statuses: tuple[str, ...] = STATUSES
        if query.get("status"):
            statuses = tuple(s.strip() for s in query["status"].split(",") if s.strip())
            unknown = [s for s in statuses if s not in STATUSES]
            if unknown:
                raise JobQueryError(f"unknown status {', '.join(unknown)}; use {', '.join(STATUSES)}")
        sort_by = query.get("sort_by", "created_at")
        if sort_by not in SORT_KEYS:
            raise JobQueryError(f"sort_by must be one of {', '.join(SORT_KEYS)}, not {sort_by!r}")
        order = query.get("sort_order", "desc").lower()
        if order not in ("asc", "desc"):
            raise JobQueryError(f"sort_order must be asc or desc, not {order!r}")
        limit = _int(query, "limit", None, minimum=1)
        offset = _int(query, "offset", 0, minimum=0)
        return cls(statuses, query.get("workflow_id") or None, sort_by, order == "desc", limit, offset or 0)


def _int(query: Mapping[str, str], name: str, default: int | None, *, minimum: int) -> int | None:
    if name not in query or query[name] == "":
        return default
    try:
        value = int(query[name])
    except ValueError:
        raise JobQueryError(f"{name} must be an integer, not {query[name]!r}") from None
    if value < minimum:
        raise JobQueryError(f"{name} must be at least {minimum}, not {value}")
    return value


def list_jobs(queue: PromptQueue, query: JobQuery, *, running_since: Mapping[str, int] | None = None
              ) -> dict[str, Any]:
    """`{"jobs": [...], "pagination": {"offset", "limit", "total", "has_more"}}` for `query`."""
    live: list[dict[str, Any]] = []
    if "in_progress" in query.statuses:
        live += [queue_job(item, "in_progress", running_since) for item in queue.running()]
    if "pending" in query.statuses:
        live += [queue_job(item, "pending") for item in queue.pending()]
    if query.workflow_id is not None:
        live = [job for job in live if job.get("workflow_id") == query.workflow_id]
    outcomes = [s for s in query.statuses if s in FINISHED]
    by_duration = query.sort_by == "execution_duration"
    # Enough of history to cut the merged page from: live jobs may sort before any of it.
    wanted = None if query.limit is None else query.offset + query.limit
    summaries, history_total = queue.history_page(outcomes=outcomes, newest_first=query.newest_first,
                                                  by_duration=by_duration, limit=wanted, offset=0,
                                                  workflow_id=query.workflow_id) if outcomes else ([], 0)
    jobs = sorted([*live, *(history_job(s) for s in summaries)], key=_sort_key(by_duration),
                  reverse=query.newest_first)
    total = len(live) + history_total
    end = None if query.limit is None else query.offset + query.limit
    page = jobs[query.offset:end]
    return {"jobs": page, "pagination": {"offset": query.offset, "limit": query.limit, "total": total,
                                         "has_more": query.offset + len(page) < total}}


def _sort_key(by_duration: bool) -> Any:
    if by_duration:
        def duration(job: dict[str, Any]) -> tuple[int, int]:
            start, end = job.get("execution_start_time"), job.get("execution_end_time")
            return ((end - start) if start and end else 0, job.get("create_time", 0))
        return duration
    return lambda job: (job.get("create_time", 0), job.get("priority", 0))


def queue_job(item: QueueItem, status: str, running_since: Mapping[str, int] | None = None) -> dict[str, Any]:
    job = _prune({"id": item.prompt_id, "status": status, "priority": _number(item.number),
                  "create_time": _create_time(item.extra_data), "outputs_count": 0,
                  "workflow_id": _workflow_id(item.extra_data)})
    started = (running_since or {}).get(item.prompt_id)
    if started is not None:
        job["execution_start_time"] = started
    return job


def history_job(summary: HistorySummary) -> dict[str, Any]:
    count, previewable, preview = outputs_summary(summary.outputs)
    error = None
    if summary.outcome == "failed":
        error = next((data for name, data in _messages(summary.status) if name == "execution_error"), None)
    return _prune({
        "id": summary.prompt_id, "status": summary.outcome, "priority": _number(summary.number),
        "create_time": summary.create_time, "execution_start_time": summary.started_ms,
        "execution_end_time": summary.ended_ms, "execution_error": error, "outputs_count": count,
        "previewable_outputs_count": previewable, "preview_output": preview, "workflow_id": summary.workflow_id,
    })


def job_detail(queue: PromptQueue, job_id: str, *, running_since: Mapping[str, int] | None = None
               ) -> dict[str, Any] | None:
    """One job with its outputs, status messages and workflow; None when no queue item or history entry has it."""
    entry = queue.history(job_id).get(job_id)
    if entry is not None:
        found, _ = queue.history_page(outcomes=FINISHED, prompt_id=job_id)
        job = history_job(found[0]) if found else {"id": job_id, "status": "completed", "create_time": 0}
        _, _, prompt, extra_data, _ = entry["prompt"]
        job.update(outputs=entry["outputs"], execution_status=entry["status"], execution_meta=entry["meta"],
                   workflow={"prompt": prompt, "extra_data": extra_data})
        return job
    for status, items in (("in_progress", queue.running()), ("pending", queue.pending())):
        for item in items:
            if item.prompt_id == job_id:
                job = queue_job(item, status, running_since)
                job["workflow"] = {"prompt": item.prompt, "extra_data": item.extra_data}
                return job
    return None


def outputs_summary(outputs: Mapping[str, Any]) -> tuple[int, int, dict[str, Any] | None]:
    """(how many output items, how many previewable, the one to preview), preferring saved outputs as ComfyUI does."""
    count = previewable = 0
    preview = fallback = None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media_type, items in node_outputs.items():
            if media_type == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if not isinstance(item, dict):
                    continue
                count += 1
                if not _previewable(media_type, item):
                    continue
                previewable += 1
                if preview is None:
                    enriched = {**item, "nodeId": node_id, "mediaType": media_type}
                    if item.get("type") == "output":
                        preview = enriched
                    elif fallback is None:
                        fallback = enriched
    return count, previewable, preview or fallback


def _previewable(media_type: str, item: Mapping[str, Any]) -> bool:
    if media_type in PREVIEWABLE:
        return True
    fmt = item.get("format")
    if isinstance(fmt, str) and fmt.startswith(("video/", "audio/")):
        return True
    name = item.get("filename")
    return isinstance(name, str) and name.lower().endswith(_THREE_D)


def _messages(status: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    for entry in status.get("messages") or []:
        if isinstance(entry, (list, tuple)) and len(entry) >= 2 and isinstance(entry[1], dict):
            yield entry[0], entry[1]


def _create_time(extra_data: Mapping[str, Any]) -> int:
    value = extra_data.get("create_time") if isinstance(extra_data, Mapping) else None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _workflow_id(extra_data: Mapping[str, Any]) -> str | None:
    info = extra_data.get("extra_pnginfo") if isinstance(extra_data, Mapping) else None
    workflow = info.get("workflow") if isinstance(info, Mapping) else None
    value = workflow.get("id") if isinstance(workflow, Mapping) else None
    return value if isinstance(value, str) else None


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _prune(job: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in job.items() if value is not None}
