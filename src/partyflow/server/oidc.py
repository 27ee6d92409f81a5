"""`GET /login/oidc` and `GET /login/oidc/callback`: the browser's side of single sign-on (partyflow.access.oidc).

The first route remembers the attempt (PKCE verifier, nonce) and sends the browser to the provider with a
`state`, which also goes into a short-lived cookie: the callback is accepted only in the browser that started it,
so nobody can log a victim into the attacker's account by sending them a callback link. The callback exchanges the
code, validates the ID token, creates or updates the user and starts the same session as the password login.

The session cookie is SameSite=Strict, and a browser does not send such a cookie on a navigation that a
cross-site redirect started; so the callback answers with a small page that moves on to the editor itself (a
same-site navigation), rather than with a redirect. The state cookie is SameSite=Lax: it must survive the
provider's redirect back to us.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from partyflow.access import AccessError, AccessStore
from partyflow.access.oidc import OidcClient, OidcConfig, OidcRefused
from partyflow.config import ConfigError
from partyflow.server.access import SESSION_COOKIE, Audit, Handler, login_html, safe_next
from partyflow.server.config import ServerConfigError

logger = logging.getLogger("partyflow.server.oidc")

STATE_COOKIE = "partyflow_oidc_state"
CALLBACK_PATH = "/login/oidc/callback"


def oidc_client(raw_config: Mapping[str, Any]) -> OidcClient | None:
    """The provider of a parsed config.toml's `[access.oidc]`, or None when single sign-on is not configured;
    ServerConfigError (which `partyflow serve` reports in one line) for a config that cannot work: a role typo,
    a missing secret variable, the extra not installed."""
    try:
        config = OidcConfig.from_config(raw_config)
        return OidcClient(config) if config is not None else None
    except ConfigError as exc:
        raise ServerConfigError(str(exc)) from None


def oidc_routes(client: OidcClient | None, store: AccessStore, *,
                audit: Audit | None = None) -> list[tuple[str, str, Handler]]:
    if client is None:
        return []
    name = client.config.name

    def refused(request: web.Request, exc: AccessError, who: str, target: str = "/") -> web.Response:
        if audit is not None:
            audit("access.login.oidc", who, "refused", exc.reason)
        logger.info("OIDC login refused for %s: %s", who, exc.reason)
        response = login_html(target, error=exc.reason, status=exc.status, sso=name)
        response.del_cookie(STATE_COOKIE, path=CALLBACK_PATH)
        return response

    async def start(request: web.Request) -> web.StreamResponse:
        target = safe_next(request.query.get("next", "/"))
        redirect_uri = client.config.redirect_uri or f"{request.scheme}://{request.host}{CALLBACK_PATH}"
        try:
            url, state = await client.begin(redirect_uri, target)
        except AccessError as exc:
            return refused(request, exc, "?", target)
        response = web.HTTPFound(url)
        response.set_cookie(STATE_COOKIE, state, httponly=True, samesite="Lax", path=CALLBACK_PATH,
                            max_age=600, secure=request.secure)
        raise response

    async def callback(request: web.Request) -> web.StreamResponse:
        query = request.query
        if "error" in query:  # the provider refused (the user cancelled, or the client is misconfigured)
            detail = query.get("error_description") or query["error"]
            return refused(request, AccessError(401, f"{name} refused the login: {detail[:300]}"), "?")
        try:
            login = await client.finish(query.get("state", ""), request.cookies.get(STATE_COOKIE),
                                        query.get("code", ""))
        except AccessError as exc:
            return refused(request, exc, exc.user if isinstance(exc, OidcRefused) else "?")
        try:
            session, changed = store.external_login(login.user, login.role, login.subject)
        except AccessError as exc:
            return refused(request, exc, login.user, login.next)
        if audit is not None:
            audit("access.login.oidc", login.user, "ok",
                  f"role {login.role} from groups {list(login.groups)}" + (f"; {changed}" if changed else ""))
        response = _continue_page(login.next)
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", path="/",
                            secure=request.secure)
        response.del_cookie(STATE_COOKIE, path=CALLBACK_PATH)
        return response

    return [("GET", "/login/oidc", start), ("GET", CALLBACK_PATH, callback)]


def _continue_page(target: str) -> web.Response:
    target = safe_next(target)
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>partyflow — logged in</title>
<meta http-equiv="refresh" content="0;url={html.escape(target)}"></head>
<body style="font-family:system-ui,sans-serif;background:#202020;color:#ddd">
<p>Logged in. <a href="{html.escape(target)}" style="color:#8cf">Continue</a></p>
</body></html>"""
    return web.Response(text=body, content_type="text/html",
                        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})
