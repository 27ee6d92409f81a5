"""Enforcement in one place: every request is matched to its rule (access_rules) and its caller's identity.

Who the caller is, in this order: a token (`Authorization: Bearer`, `?token=` on WebSockets and first page
loads, or the cookie set after such a load) — either a user's `pf_...` token or the server's own API token
(`--token`, acting as admin, as before users existed); then a browser session cookie from the login page. With no
users defined and no server token, a loopback server serves everyone as the local admin, so the two-command start
is unchanged; once a user exists, every non-public route needs an identity.

Refusals are JSON (401: who are you? 403: not allowed) with a reason the caller can act on, never revealing which
tokens or users exist. Refused privileged requests are written to the audit log with the caller's name.
"""

from __future__ import annotations

import hmac
import html
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from partyflow.access import AccessError, AccessStore, Identity, Permission
from partyflow.server.access_rules import CHAT, PUBLIC, Level, level_for
from partyflow.server.errors import json_error

logger = logging.getLogger("partyflow.server.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IDENTITY: web.RequestKey[Identity] = web.RequestKey("partyflow_identity", Identity)
TOKEN_COOKIE = "partyflow_token"
SESSION_COOKIE = "partyflow_session"
LOCAL_USER = "default"
Audit = Callable[[str, str, str, str], None]  # (action, actor, result, detail)


def identity_of(request: web.Request) -> Identity | None:
    """The caller the access middleware admitted (None for public routes without credentials)."""
    return request.get(IDENTITY)


OWNER_KEY = "partyflow_user"  # in a queued prompt's extra_data: the signed-in user who queued it


def signed_in(identity: Identity | None) -> bool:
    """A real account (token or browser session), as opposed to the server token or the local admin."""
    return identity is not None and identity.via in ("token", "session")


def prompt_owner(extra_data: Any) -> str | None:
    owner = extra_data.get(OWNER_KEY) if isinstance(extra_data, dict) else None
    return owner if isinstance(owner, str) else None


def may_manage(request: web.Request, extra_data: Any) -> bool:
    """Whether the caller may interrupt, cancel or delete a prompt: admins any, other users their own."""
    identity = identity_of(request)
    return identity is None or identity.is_admin or prompt_owner(extra_data) == identity.user


def data_user(request: web.Request, users: Any) -> str:
    """Whose data folder a request uses: a signed-in user's own; otherwise the `comfy-user` header as before
    (multi-user mode without accounts, which trusts the header as ComfyUI does)."""
    identity = identity_of(request)
    if signed_in(identity):
        return identity.user  # type: ignore[union-attr]
    return users.user_for(request.headers.get("comfy-user"))


def access_middleware(store: AccessStore, *, server_token: str | None, audit: Audit | None = None,
                      require_login: bool = False) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """`require_login`: no open local mode even before the first user exists (single sign-on is configured, so
    accounts come from the identity provider)."""

    @web.middleware
    async def check_access(request: web.Request, handler: Handler) -> web.StreamResponse:
        level = _level(request)
        offered, from_query = _offered_token(request)
        try:
            identity = _identify(store, server_token, offered, request.cookies.get(SESSION_COOKIE), require_login)
        except AccessError as exc:
            if level == PUBLIC:
                identity = None
            else:
                return _refused(request, exc)
        if identity is None and level != PUBLIC:
            return _refused(request, AccessError(401, "log in at /login, or send a token as 'Authorization: "
                                                     "Bearer <token>' (partyflow tokens create)"))
        if identity is None and request.path == "/" and request.method == "GET" and (
                require_login or server_token or store.has_users()):
            raise web.HTTPFound("/login")  # the editor would only meet 401s: show where to log in instead
        if identity is not None and level != PUBLIC:
            refusal = _check(identity, level, request)
            if refusal is not None:
                if level in (Permission.ADMIN, Permission.PUBLISH) and audit is not None:
                    audit("access.denied", identity.user, "refused", f"{request.method} {request.path}")
                return _refused(request, refusal)
        if identity is not None:
            request[IDENTITY] = identity
        response = await handler(request)
        if from_query and offered and request.method == "GET" and not response.prepared:
            # A browser opened a page with ?token=: its own fetches then carry the cookie instead of the query.
            response.set_cookie(TOKEN_COOKIE, offered, httponly=True, samesite="Strict", path="/")
        return response

    return check_access


def _level(request: web.Request) -> Level:
    route = request.match_info.route
    resource = route.resource
    if resource is None:  # no such route: the router answers 404/405 itself, with nothing to protect
        return PUBLIC
    static = isinstance(resource, web.StaticResource)
    path = resource.canonical if resource is not None else None
    return level_for(request.method, path, static=static,
                     pack_route=bool(getattr(route.handler, "partyflow_pack_route", False)))


def _identify(store: AccessStore, server_token: str | None, offered: str | None,
              session: str | None, require_login: bool = False) -> Identity | None:
    if offered:
        if server_token and hmac.compare_digest(offered.encode(), server_token.encode()):
            return Identity("admin", "admin", "server-token")
        if offered.startswith("pf_"):
            return store.authenticate_token(offered)
        raise AccessError(401, "the token is not valid: check that it was copied whole, or create a new one "
                               "with 'partyflow tokens create'")
    if session:
        return store.session(session)
    if server_token is None and not require_login and not store.has_users():
        return Identity(LOCAL_USER, "admin", "local")
    return None


def _check(identity: Identity, level: Level, request: web.Request) -> AccessError | None:
    what = f"{request.method} {request.path}"
    if level == CHAT:
        if identity.allows(Permission.RUN) or identity.chat_only:
            return None  # the chat handler checks the model against the scopes
        return identity.refuse(Permission.RUN, what)
    assert isinstance(level, Permission)
    if identity.chat_only:
        return AccessError(403, f"{what}: this token may only chat with its published model(s)")
    return None if identity.allows(level) else identity.refuse(level, what)


def _offered_token(request: web.Request) -> tuple[str | None, bool]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), False
    if "token" in request.query:
        return request.query["token"], True
    return request.cookies.get(TOKEN_COOKIE), False


def _refused(request: web.Request, exc: AccessError) -> web.Response:
    if exc.status == 401 and request.method == "GET" and _wants_html(request):
        raise web.HTTPFound(f"/login?next={request.path_qs if request.path_qs.startswith('/') else '/'}")
    kind = "unauthorized" if exc.status == 401 else "forbidden"
    message = "Authentication required" if exc.status == 401 else "Not allowed"
    return json_error(exc.status, kind, message, exc.reason)


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "") and request.path in ("/", "/index.html")


# ---- the login page -----------------------------------------------------------------------------------------


def login_routes(store: AccessStore, *, audit: Audit | None = None,
                 sso: str | None = None) -> list[tuple[str, str, Handler]]:
    """GET/POST /login and POST /logout: a plain form (works without JavaScript) setting an HttpOnly,
    SameSite=Strict session cookie; the Origin check already refuses cross-site form posts. `sso`: the name of
    the configured identity provider, linked from the page (server/oidc.py)."""

    async def login_page(request: web.Request) -> web.Response:
        return login_html(request.query.get("next", "/"), error=None, sso=sso)

    async def login(request: web.Request) -> web.StreamResponse:
        try:
            form = await request.post()
        except (ValueError, UnicodeDecodeError):  # a malformed form body is the client's mistake
            return login_html("/", error="the login form could not be read; send it again", status=400)
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        target = safe_next(str(form.get("next", "/")))
        try:
            session = store.login(name, password)
        except AccessError as exc:
            if audit is not None:
                audit("access.login", name[:64] or "?", "refused", exc.reason)
            return login_html(target, error=exc.reason, status=exc.status, sso=sso)
        response = web.HTTPFound(target)
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", path="/",
                            secure=request.secure)
        raise response

    async def logout(request: web.Request) -> web.StreamResponse:
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            store.logout(session)
        response = web.HTTPFound("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        response.del_cookie(TOKEN_COOKIE, path="/")
        raise response

    return [("GET", "/login", login_page), ("POST", "/login", login), ("POST", "/logout", logout)]


def safe_next(target: str) -> str:
    """Only a path on this server (never `//evil.example` or a full URL) may follow a login; no control
    characters or spaces either (browsers drop tabs and newlines from URLs: `/<tab>/evil.example` is `//evil.example`)."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def login_html(target: str, *, error: str | None, status: int = 200, sso: str | None = None) -> web.Response:
    message = f'<p class="error">{html.escape(error)}</p>' if error else ""
    link = (f'<p class="sso"><a href="/login/oidc?next={quote(safe_next(target), safe="/")}">Log in with '
            f'{html.escape(sso)}</a></p>') if sso else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>partyflow — log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;background:#202020;color:#ddd;display:flex;justify-content:center;
margin-top:12vh}}form{{background:#2b2b2b;padding:2em;border-radius:8px;min-width:18em}}label{{display:block;
margin:.8em 0 .2em}}input{{width:100%;padding:.5em;box-sizing:border-box}}button{{margin-top:1.2em;width:100%;
padding:.6em}}.error{{color:#f88}}.sso{{margin-top:1.2em;text-align:center}}a{{color:#8cf}}</style></head>
<body><form method="post" action="/login"><h1>partyflow</h1>{message}
<input type="hidden" name="next" value="{html.escape(safe_next(target))}">
<label for="username">User</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>{link}</form></body></html>"""
    return web.Response(text=body, content_type="text/html", status=status,
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


def audit_writer(home: Any) -> Audit:
    """Access decisions into the home's hash-chained audit log (the manager's), with the caller as actor."""
    from partyflow.manager.audit import AuditLog

    def write(action: str, actor: str, result: str, detail: str) -> None:
        try:
            with AuditLog(home) as log:
                log.record(action, result=result, actor=actor, details={"request": detail})
        except Exception:  # the refusal stands even if the log cannot be written; say so loudly
            logger.exception("could not write the audit record of %s by %s", action, actor)

    return write
