"""Per-user data: /users, /settings, /userdata (saved workflows and other files), each confined to the user's
directory; the `comfy-user` header picks the user when multi-user mode is on."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path
from typing import Any

from aiohttp import web

from partyflow.server.access import data_user, identity_of
from partyflow.server.context import context
from partyflow.server.errors import (
    BadJSON,
    bad_request,
    forbidden,
    json_error,
    not_found,
    path_refused,
    read_json,
)
from partyflow.server.paths import PathRefused, confine, relative
from partyflow.server.routes import Route
from partyflow.server.routes.files import file_response
from partyflow.server.users import UnknownUser, atomic_write

USER_CSS = "user.css"


def _user_dir(request: web.Request) -> Path:
    """The requesting user's directory; raises UnknownUser (answered 403 by `_guard`)."""
    users = context(request).users
    return users.directory(data_user(request, users))


def _guard(handler: Any) -> Any:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except UnknownUser as exc:
            return forbidden("Unknown user", str(exc))
        except PathRefused as exc:
            return path_refused(exc)
        except BadJSON as exc:
            return bad_request("Invalid request body", str(exc))
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            # e.g. saving `a.json/b.json` when a.json is a file: the user's naming clash, not a server fault
            return json_error(409, "conflict", "A file or folder is in the way",
                              "a folder in the path is a file, or the target is a folder")
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
            return bad_request("Bad file name", "a name in the path is too long", kind="bad_path")
    wrapped.__name__ = handler.__name__
    return wrapped


# ---- users ----------------------------------------------------------------------------------------------------

async def get_users(request: web.Request) -> web.Response:
    users = context(request).users
    identity = identity_of(request)
    if identity is not None and identity.via in ("token", "session"):
        return web.json_response({"storage": "server", "migrated": True})  # the account is the user: no picker
    if users.multi_user:
        return web.json_response({"storage": "server", "users": users.users()})
    return web.json_response({"storage": "server", "migrated": True})


async def post_users(request: web.Request) -> web.Response:
    users = context(request).users
    body = await read_json(request, default={})
    username = body.get("username") if isinstance(body, dict) else None
    if not isinstance(username, str):
        return bad_request("send {\"username\": \"...\"}")
    try:
        return web.json_response(users.create(username))
    except ValueError as exc:
        return bad_request(str(exc))


# ---- settings -------------------------------------------------------------------------------------------------

def _user(request: web.Request) -> str:
    users = context(request).users
    return data_user(request, users)


async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(context(request).users.settings(_user(request)))


async def get_setting(request: web.Request) -> web.Response:
    return web.json_response(context(request).users.settings(_user(request)).get(request.match_info["id"]))


async def post_settings(request: web.Request) -> web.Response:
    body = await read_json(request, default={})
    if not isinstance(body, dict):
        return bad_request("send a JSON object of setting ids to values")
    context(request).users.update_settings(_user(request), body)
    return web.Response(status=200)


async def post_setting(request: web.Request) -> web.Response:
    value = await read_json(request)
    context(request).users.update_settings(_user(request), {request.match_info["id"]: value})
    return web.Response(status=200)


# ---- userdata -------------------------------------------------------------------------------------------------

def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    return default if value is None else value.lower() in ("true", "1", "yes")


def _info(base: Path, path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": relative(base, path), "size": stat.st_size, "modified": stat.st_mtime,
            "created": stat.st_ctime}


def _inside(base: Path, path: Path) -> bool:
    try:
        confine(base, relative(base, path))
        return True
    except (PathRefused, ValueError):
        return False


async def list_userdata(request: web.Request) -> web.Response:
    directory = request.query.get("dir", "")
    if not directory:
        return bad_request("dir is required")
    base = _user_dir(request)
    root = confine(base, directory)
    if not root.is_dir():
        return not_found("No such directory", directory)
    recurse, split, full = _flag(request, "recurse"), _flag(request, "split"), _flag(request, "full_info")

    def scan() -> list[Any]:
        files = sorted(p for p in (root.rglob("*") if recurse else root.iterdir())
                       if p.is_file() and not p.name.startswith(".") and _inside(base, p))
        out: list[Any] = []
        for path in files:
            rel = path.relative_to(root).as_posix()
            if full:
                out.append({**_info(root, path), "path": rel})
            elif split:
                out.append([rel, *rel.split("/")])
            else:
                out.append(rel)
        return out

    return web.json_response(await asyncio.to_thread(scan))


async def list_userdata_v2(request: web.Request) -> web.Response:
    """Newer frontends' listing: one directory, entries with name, path, type, size and modified."""
    base = _user_dir(request)
    root = confine(base, request.query.get("path", ""))
    if not root.is_dir():
        return not_found("No such directory")
    return web.json_response(await asyncio.to_thread(_entries_v2, base, root))


def _entries_v2(base: Path, root: Path) -> list[dict[str, Any]]:
    entries = []
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        if not _inside(base, path):
            continue  # a symlink out of the user's directory is not listed
        try:
            stat = path.stat()
        except OSError:
            continue  # a link to a file deleted since, or one removed while listing: nothing to open
        entry: dict[str, Any] = {"name": path.name, "path": relative(base, path),
                                 "type": "directory" if path.is_dir() else "file", "modified": stat.st_mtime}
        if path.is_file():
            entry["size"] = stat.st_size
        entries.append(entry)
    return entries


async def get_userdata(request: web.Request) -> web.StreamResponse:
    path = confine(_user_dir(request), request.match_info["file"])
    if not path.is_file():
        return not_found("No such file")
    return file_response(path)  # a saved .html/.svg comes back as a download, never a page on our origin


async def post_userdata(request: web.Request) -> web.Response:
    base = _user_dir(request)
    path = confine(base, request.match_info["file"])
    if path == base.resolve() or path.is_dir():
        return bad_request("the path names a directory, not a file")
    if path.exists() and not _flag(request, "overwrite", default=True):
        return json_error(409, "conflict", "File already exists", "pass overwrite=true to replace it")
    data = await request.read()
    await asyncio.to_thread(atomic_write, path, data)
    return web.json_response(_info(base, path) if _flag(request, "full_info") else relative(base, path))


async def delete_userdata(request: web.Request) -> web.Response:
    base = _user_dir(request)
    path = confine(base, request.match_info["file"])
    if not path.is_file():
        return not_found("No such file")
    path.unlink()
    return web.Response(status=204)


async def move_userdata(request: web.Request) -> web.Response:
    base = _user_dir(request)
    source = confine(base, request.match_info["file"])
    dest = confine(base, request.match_info["dest"])
    if not source.is_file():
        return not_found("No such file")
    if dest.exists() and not _flag(request, "overwrite", default=True):
        return json_error(409, "conflict", "File already exists", "pass overwrite=true to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, dest)
    return web.json_response(_info(base, dest) if _flag(request, "full_info") else relative(base, dest))


async def get_user_css(request: web.Request) -> web.Response:
    """The editor's page links `/user.css`: the user's own `user.css` (userdata) when saved, else an empty sheet,
    so a fresh install's page loads without a failed request."""
    path = confine(_user_dir(request), USER_CSS)
    css = await asyncio.to_thread(path.read_bytes) if path.is_file() else b""
    return web.Response(body=css, content_type="text/css", headers={"Cache-Control": "no-cache"})


ROUTES: list[Route] = [(method, path, _guard(handler)) for method, path, handler in [
    ("GET", "/users", get_users),
    ("POST", "/users", post_users),
    ("GET", "/settings", get_settings),
    ("POST", "/settings", post_settings),
    ("GET", "/settings/{id}", get_setting),
    ("POST", "/settings/{id}", post_setting),
    ("GET", "/userdata", list_userdata),
    ("GET", "/v2/userdata", list_userdata_v2),
    ("GET", "/userdata/{file}", get_userdata),
    ("POST", "/userdata/{file}", post_userdata),
    ("DELETE", "/userdata/{file}", delete_userdata),
    ("POST", "/userdata/{file}/move/{dest}", move_userdata),
    ("GET", "/user.css", get_user_css),
]]
