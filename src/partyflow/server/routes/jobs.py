"""GET /jobs, GET /jobs/{id}, POST /jobs/{id}/cancel, POST /jobs/cancel: the queue panel's API (see server/jobs.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from partyflow.server.access import may_manage
from partyflow.server.context import ServerContext, context
from partyflow.server.errors import BadJSON, bad_request, not_found, read_json
from partyflow.server.jobs import JobQuery, JobQueryError, job_detail, list_jobs
from partyflow.server.routes import Route

MAX_CANCEL_IDS = 1000


def _running_since(ctx: ServerContext) -> dict[str, int]:
    current, started = ctx.worker.current, ctx.worker.started_ms
    return {current.prompt_id: started} if current is not None and started is not None else {}


async def get_jobs(request: web.Request) -> web.Response:
    ctx = context(request)
    try:
        query = JobQuery.parse(request.query)
    except JobQueryError as exc:
        return bad_request("Invalid jobs query", str(exc))
    # SQLite reads wait for the connection lock a committing thread may hold through fsync: off the event loop
    body = await asyncio.to_thread(list_jobs, ctx.engine.queue, query, running_since=_running_since(ctx))
    return web.json_response(body)


async def get_job(request: web.Request) -> web.Response:
    ctx = context(request)
    job_id = request.match_info["job_id"]
    job = await asyncio.to_thread(job_detail, ctx.engine.queue, job_id, running_since=_running_since(ctx))
    if job is None:
        return not_found(f"no job {job_id!r}", "GET /api/jobs lists the queued, running and finished jobs")
    return web.json_response(job)


async def cancel_job(request: web.Request) -> web.Response:
    ctx = context(request)
    job_id = request.match_info["job_id"]
    outcome = await _cancel(ctx, job_id, request)
    if outcome is None:
        return not_found(f"no job {job_id!r}", "GET /api/jobs lists the queued, running and finished jobs")
    return web.json_response({"id": job_id, **outcome})


async def cancel_jobs(request: web.Request) -> web.Response:
    try:
        body = await read_json(request, default={})
    except BadJSON as exc:
        return bad_request("Invalid request body", str(exc))
    ids = body.get("job_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > MAX_CANCEL_IDS:
        return bad_request("job_ids must be a list of job ids", f"up to {MAX_CANCEL_IDS} at a time")
    ctx = context(request)
    results = []
    for job_id in dict.fromkeys(ids):
        outcome = await _cancel(ctx, job_id, request)
        results.append({"id": job_id, **(outcome or {"cancelled": False, "status": "not_found"})})
    return web.json_response({"jobs": results})


async def _cancel(ctx: ServerContext, job_id: str, request: web.Request) -> dict[str, Any] | None:
    """Pending: moved to history as cancelled. Running: interrupted (history then says cancelled). Finished: left
    as it is (cancelling is idempotent). None when the id is unknown. Users other than admins cancel only
    their own jobs (`forbidden` otherwise)."""
    queue = ctx.engine.queue
    current = ctx.worker.current
    queued = next((i for i in await asyncio.to_thread(queue.pending) if i.prompt_id == job_id), None)
    target = queued or (current if current is not None and current.prompt_id == job_id else None)
    if target is not None and not may_manage(request, target.extra_data):
        return {"cancelled": False, "status": "forbidden"}
    if await asyncio.to_thread(queue.cancel_pending, job_id):
        return {"cancelled": True, "status": "cancelled"}
    if current is not None and current.prompt_id == job_id:
        ctx.engine.interrupt(job_id)
        return {"cancelled": True, "status": "in_progress"}
    found, _ = await asyncio.to_thread(lambda: queue.history_page(prompt_id=job_id))
    if found:
        return {"cancelled": False, "status": found[0].outcome}
    return None


ROUTES: list[Route] = [
    ("GET", "/jobs", get_jobs),
    ("POST", "/jobs/cancel", cancel_jobs),
    ("GET", "/jobs/{job_id}", get_job),
    ("POST", "/jobs/{job_id}/cancel", cancel_job),
]
