"""Files: GET /view, POST /upload/image and /upload/mask (input, output and temp only), and packs' web files.

Every name a request gives goes through `paths.confine`. Files that a browser would run as a page or script are
served as downloads, so an uploaded .html/.svg cannot act with the server's origin (stored XSS).
"""

from __future__ import annotations

import asyncio
import errno
import mimetypes
import os
from pathlib import Path

from aiohttp import BodyPartReader, web

from partyflow.server.context import context
from partyflow.server.errors import bad_request, json_error, not_found, path_refused
from partyflow.server.paths import MAX_NAME_BYTES, BadName, PathRefused, confine
from partyflow.server.routes import Route

FOLDER_TYPES = ("input", "output", "temp")
_ACTIVE_TYPES = {"text/html", "application/xhtml+xml", "image/svg+xml", "text/javascript", "application/javascript",
                 "text/css", "application/xml", "text/xml"}


def _folder(request: web.Request, kind: str) -> Path | None:
    home = context(request).engine.home
    return {"input": home.input, "output": home.output, "temp": home.temp}.get(kind)


def _parse_annotated(name: str) -> tuple[str, str | None]:
    """ComfyUI's `name.png [output]` form: the folder type given inside the file name."""
    for kind in FOLDER_TYPES:
        suffix = f" [{kind}]"
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, None


async def view(request: web.Request) -> web.StreamResponse:
    filename = request.query.get("filename", "")
    if not filename:
        return bad_request("filename is required")
    filename, annotated = _parse_annotated(filename)
    kind = annotated or request.query.get("type") or "output"
    base = _folder(request, kind)
    if base is None:
        return bad_request(f"type must be one of {', '.join(FOLDER_TYPES)}")
    try:
        path = confine(base, request.query.get("subfolder", ""), filename)
    except PathRefused as exc:
        return path_refused(exc)
    if not path.is_file():
        return not_found("No such file", filename)
    return file_response(path)


def file_response(path: Path, *, inline_scripts: bool = False) -> web.FileResponse:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    response = web.FileResponse(path)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if content_type in _ACTIVE_TYPES and not inline_scripts:
        response.content_type = "application/octet-stream"
        response.headers["Content-Disposition"] = f'attachment; filename="{_header_safe(path.name)}"'
    else:
        response.content_type = content_type
        response.headers["Content-Disposition"] = f'filename="{_header_safe(path.name)}"'
    return response


def _header_safe(name: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "_" for c in name)


async def upload_image(request: web.Request) -> web.Response:
    return await _upload(request, mask=False)


async def upload_mask(request: web.Request) -> web.Response:
    """Stores the mask image as uploaded (ComfyUI composites it into the original's alpha, which needs Pillow)."""
    return await _upload(request, mask=True)


async def _upload(request: web.Request, *, mask: bool) -> web.Response:
    if not request.content_type.startswith("multipart/"):
        return bad_request("upload with multipart/form-data, the file in the 'image' field")
    limit = context(request).config.max_upload_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    try:
        fields, image = await _read_form(request, limit)
    except ValueError as exc:  # aiohttp's parser: no boundary, a truncated part, a bad header
        return bad_request("the multipart body is malformed", str(exc))
    if image is None:
        return bad_request("no file in the 'image' field")
    kind = fields.get("type") or "input"
    base = _folder(request, kind)
    if base is None:
        return bad_request(f"type must be one of {', '.join(FOLDER_TYPES)}")
    name = Path(image[0].replace("\\", "/")).name
    if not name or name in (".", ".."):
        return bad_request("the uploaded file needs a name")
    subfolder = fields.get("subfolder", "")
    try:
        directory = confine(base, subfolder)
        target = confine(directory, name)
    except PathRefused as exc:
        return path_refused(exc)
    overwrite = fields.get("overwrite", "").lower() in ("true", "1")
    if mask:
        overwrite = True  # the mask editor saves over its own file
    try:
        if not overwrite:
            target = _free_name(target)
    except PathRefused as exc:
        return path_refused(exc)
    try:
        await asyncio.to_thread(_store, directory, target, image[1])
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        return json_error(409, "conflict", "A file or folder is in the way",
                          "the subfolder names a file, or the file name names a folder")
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        return bad_request("Bad file name", "the file name (with its ' (n)' suffix) is too long", kind="bad_path")
    return web.json_response({"name": target.name, "subfolder": subfolder, "type": kind})


async def _read_form(request: web.Request, limit: int) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """The form's short text fields and its 'image' file (name, bytes); ValueError for a malformed body."""
    fields: dict[str, str] = {}
    image: tuple[str, bytes] | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "image" and part.filename is not None:
            image = (part.filename, await _read_limited(part, limit))
        elif part.name:
            fields[part.name] = (await part.read(decode=True))[:4096].decode("utf-8", "replace")
    return fields, image


def _store(directory: Path, target: Path, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


async def _read_limited(part: BodyPartReader, limit: int) -> bytes:
    """The part's bytes, refusing (413) as soon as they pass `limit`: memory never holds more than that."""
    chunks, size = [], 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def _free_name(target: Path) -> Path:
    """`name (1).png`, `name (2).png`, ... as ComfyUI does when a file of that name exists."""
    candidate, index = target, 1
    while candidate.exists():
        candidate = target.with_name(f"{target.stem} ({index}){target.suffix}")
        if len(os.fsencode(candidate.name)) > MAX_NAME_BYTES:
            raise BadName(f"{target.name[:40]!r}... exists, and a free name beside it would be longer than "
                          f"{MAX_NAME_BYTES} bytes; pass overwrite=true or choose a shorter name")
        index += 1
    return candidate


# The server's own editor extensions (web/), listed and served like a pack's WEB_DIRECTORY under this name
SERVER_WEB = Path(__file__).resolve().parents[1] / "web"
SERVER_WEB_NAME = "partyflow-server"


def web_directories(request: web.Request) -> dict[str, str]:
    """Every web directory the editor loads extensions from: the packs' and the server's own."""
    return {**context(request).engine.registry.web_directories, SERVER_WEB_NAME: str(SERVER_WEB)}


async def extension_file(request: web.Request) -> web.StreamResponse:
    pack = request.match_info["pack"]
    directory = web_directories(request).get(pack)
    if directory is None:
        return not_found(f"no web directory for pack {pack!r}")
    try:
        path = confine(Path(directory), request.match_info["path"])
    except PathRefused as exc:
        return path_refused(exc)
    if not path.is_file():
        return not_found("No such file")
    return file_response(path, inline_scripts=True)


ROUTES: list[Route] = [
    ("GET", "/view", view),
    ("POST", "/upload/image", upload_image),
    ("POST", "/upload/mask", upload_mask),
]
STATIC_ROUTES: list[Route] = [("GET", "/extensions/{pack}/{path:.*}", extension_file)]
