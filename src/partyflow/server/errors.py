"""Error answers in ComfyUI's JSON shape, so clients that parse `error.message` keep working for every refusal."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from partyflow.graph.limits import MAX_JSON_DEPTH, json_depth_exceeds


def error_body(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    """`{"error": {...}, "node_errors": {}}`: the body ComfyUI's POST /prompt answers a refused prompt with."""
    return {"error": {"type": kind, "message": message, "details": details, "extra_info": extra}, "node_errors": {}}


def json_error(status: int, kind: str, message: str, details: str = "", **extra: Any) -> web.Response:
    return web.json_response(error_body(kind, message, details, **extra), status=status)


def bad_request(message: str, details: str = "", *, kind: str = "invalid_request") -> web.Response:
    return json_error(400, kind, message, details)


def path_refused(exc: ValueError) -> web.Response:
    """The answer to a refused request path (`paths.PathRefused`): its own status, 403 unless it says otherwise."""
    status = getattr(exc, "status", 403)
    if status == 400:
        return bad_request("Bad file name", str(exc), kind="bad_path")
    return forbidden("Path not allowed", str(exc))


def not_found(message: str, details: str = "") -> web.Response:
    return json_error(404, "not_found", message, details)


def forbidden(message: str, details: str = "") -> web.Response:
    return json_error(403, "forbidden", message, details)


async def read_json(request: web.Request, *, default: Any = None) -> Any:
    """The request body as strict JSON; an empty body gives `default`. Raises `BadJSON` with a user-facing reason.

    NaN and Infinity (which Python's json accepts, and `1e400` becomes) are refused: a stored setting or
    prompt holding one would later be served back as text a browser's JSON.parse rejects, and one such
    setting keeps the editor from booting at all. So is nesting deeper than `MAX_JSON_DEPTH` levels: the parser
    (or any later walk over the value) would otherwise stop with a RecursionError, a 500 instead of a 400.
    Every JSON route reads its body here, so these rules hold for all of them.
    """
    raw = await request.read()
    if not raw.strip():
        return default
    return parse_json_body(raw)


def parse_json_body(raw: bytes | str) -> Any:
    """`read_json`'s rules for bytes already read; raises `BadJSON`."""
    try:
        value = json.loads(raw, parse_constant=_non_finite, parse_float=_finite_float)
    except RecursionError:
        raise BadJSON(_too_deep()) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadJSON(f"the request body is not valid JSON: {exc}") from None
    if json_depth_exceeds(value):
        raise BadJSON(_too_deep())
    return value


def _too_deep() -> str:
    return f"the request body nests more than {MAX_JSON_DEPTH} levels deep"


def _non_finite(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _finite_float(token: str) -> float:
    value = float(token)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{token} is too large for a JSON number")
    return value


class BadJSON(ValueError):
    """A body that does not parse; handlers turn it into a 400."""
