"""A small but real OpenID Connect provider for the tests, on 127.0.0.1 in its own thread and event loop.

It speaks the OIDC wire format a company provider does: the discovery document, `/authorize` answering with a
code (straight away, or after an "Approve" page for the browser test), `/token` checking the client's secret
(HTTP Basic or form), the redirect URI and the PKCE verifier (S256), and `/jwks` with the RS256 public key the
ID tokens are signed with. Knobs let a test make it misbehave the ways a hostile or broken provider would: sign
with another key, send an expired token or a wrong nonce.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

CODE_LIFETIME_S = 60


@dataclass
class Person:
    """Who is "signed in" at the provider: the claims it puts in the ID token."""

    sub: str
    preferred_username: str
    groups: list[str] = field(default_factory=list)


@dataclass
class OidcProvider:
    client_id: str = "partyflow"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    redirect_uris: set[str] = field(default_factory=set)
    person: Person = field(default_factory=lambda: Person("u-1", "ada", ["ml-admins"]))
    consent_page: bool = False          # show an "Approve" button instead of answering at once
    sign_with_other_key: bool = False   # a forged token: same key id, a key the JWKS does not hold
    expired: bool = False
    nonce_override: str | None = None
    url: str = ""
    token_requests: int = 0

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig", "alg": "RS256"},
                                       private=True)
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "test-key"}, private=True)
        self._codes: dict[str, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> OidcProvider:
        ready = threading.Event()

        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            runner = web.AppRunner(self._app(), handle_signals=False, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), name="oidc-provider", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError("the test OIDC provider did not start")
        return self

    def stop(self) -> None:
        if self._thread and self._thread.is_alive() and self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)

    # ---- endpoints --------------------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/authorize", self._approve)
        app.router.add_post("/token", self._token)
        app.router.add_get("/jwks", self._jwks)
        return app

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "profile", "groups"], "grant_types_supported": ["authorization_code"],
        })

    async def _jwks(self, request: web.Request) -> web.Response:
        return web.json_response(KeySet([self.key]).as_dict(private=False))

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        problem = self._check_authorize(query)
        if problem:
            return web.Response(status=400, text=problem)
        if not self.consent_page:
            return self._issue_code(query)
        fields = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in query.items())
        return web.Response(content_type="text/html", text=(
            "<!doctype html><html><body><h1>Test identity provider</h1>"
            f"<p>partyflow asks to sign you in as {html.escape(self.person.preferred_username)}.</p>"
            f'<form method="post" action="/authorize">{fields}<button type="submit">Approve</button></form>'
            "</body></html>"))

    async def _approve(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        query = {k: str(v) for k, v in form.items()}
        problem = self._check_authorize(query)
        return web.Response(status=400, text=problem) if problem else self._issue_code(query)

    def _check_authorize(self, query: Any) -> str | None:
        if query.get("response_type") != "code":
            return "unsupported response_type"
        if query.get("client_id") != self.client_id:
            return "unknown client"
        if query.get("redirect_uri") not in self.redirect_uris:
            return "redirect_uri is not registered"
        if "openid" not in query.get("scope", "").split():
            return "the openid scope is required"
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return "PKCE with S256 is required"
        return None

    def _issue_code(self, query: Any) -> web.StreamResponse:
        code = secrets.token_urlsafe(24)
        self._codes[code] = {"redirect_uri": query["redirect_uri"], "challenge": query["code_challenge"],
                             "nonce": query.get("nonce"), "created": time.time()}
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query.get('state', '')})}")

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        if client_id != self.client_id or not hmac.compare_digest(str(secret or ""), self.client_secret):
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        grant = self._codes.pop(str(form.get("code", "")), None)  # single use
        if grant is None or time.time() - grant["created"] > CODE_LIFETIME_S:
            return web.json_response({"error": "invalid_grant", "error_description": "unknown code"}, status=400)
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return web.json_response({"error": "invalid_grant", "error_description": "redirect_uri"}, status=400)
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or not hmac.compare_digest(challenge, grant["challenge"]):
            return web.json_response({"error": "invalid_grant", "error_description": "PKCE verification failed"},
                                     status=400)
        now = int(time.time())
        claims = {"iss": self.url, "sub": self.person.sub, "aud": self.client_id, "iat": now,
                  "exp": now - 3600 if self.expired else now + 300,
                  "nonce": self.nonce_override if self.nonce_override is not None else grant["nonce"],
                  "preferred_username": self.person.preferred_username, "groups": self.person.groups}
        key = self.other_key if self.sign_with_other_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key)
        return web.json_response({"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                                  "expires_in": 300, "id_token": id_token},
                                 headers={"Cache-Control": "no-store"})
