"""Single sign-on with the company's OpenID Connect provider (the `oidc` extra: authlib and joserfc).

The authorization code flow with PKCE (S256), a `state` bound to the browser that started the login and a
`nonce` bound to the ID token. The provider is found by discovery (`<issuer>/.well-known/openid-configuration`),
the ID token's signature is checked against the provider's published keys (JWKS, fetched again once when a token
names a key we have not seen: keys rotate), then its `iss`, `aud`/`azp`, `exp` and `nonce`. The user's groups
(a configurable claim) are mapped to a role; the highest role any group gives wins, and with no matching group
the login gets the configured default role or is refused.

Why our own claim checks rather than a generic validator: each failure gets a reason a person can act on
("the ID token expired at ..., check this server's clock"), which is what the refusal page shows.

Config (`config.toml`):

    [access.oidc]
    name = "Company SSO"                  # shown on the login page: "Log in with Company SSO"
    issuer = "https://idp.example.com/realms/main"
    client_id = "partyflow"
    client_secret_env = "PARTYFLOW_OIDC_SECRET"   # the NAME of the variable holding the secret; omit for a public client
    scopes = ["openid", "profile", "groups"]
    username_claim = "preferred_username"
    groups_claim = "groups"
    default_role = "viewer"               # omit: refuse users in no mapped group
    roles = { "ml-admins" = "admin", "analysts" = "runner" }
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from partyflow.access.roles import ROLES, AccessError, check_role
from partyflow.config import ConfigError

DISCOVERY_PATH = "/.well-known/openid-configuration"
PENDING_LIFETIME_S = 600.0   # a login not finished within 10 minutes must start again
MAX_PENDING = 10_000         # bounded: a flood of started logins cannot grow memory without limit
DISCOVERY_TTL_S = 3600.0
JWKS_REFRESH_MIN_S = 60.0    # an unknown key id fetches the JWKS again at most this often
CLOCK_LEEWAY_S = 60
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}


class OidcRefused(AccessError):
    """A login refused after the provider vouched for the person: `user` names them for the audit log."""

    def __init__(self, status: int, reason: str, user: str) -> None:
        super().__init__(status, reason)
        self.user = user


@dataclass(frozen=True)
class OidcConfig:
    """The `[access.oidc]` table, validated; the client secret is read from the named variable, never stored."""

    issuer: str
    client_id: str
    name: str = "single sign-on"
    client_secret_env: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile")
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    roles: tuple[tuple[str, str], ...] = ()
    default_role: str | None = None
    redirect_uri: str | None = None  # behind a reverse proxy: the public URL of /login/oidc/callback

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> OidcConfig | None:
        """The OIDC settings of a parsed config.toml; None without an `[access.oidc]` table; ConfigError naming
        the key for anything that cannot work."""
        access = raw.get("access", {})
        table = access.get("oidc") if isinstance(access, Mapping) else None
        if table is None:
            return None
        where = "config.toml [access.oidc]"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where} must be a table")
        known = {"issuer", "client_id", "name", "client_secret_env", "scopes", "username_claim", "groups_claim",
                 "roles", "default_role", "redirect_uri"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(sorted(known))}")
        for key in ("issuer", "client_id"):
            if not isinstance(table.get(key), str) or not table[key].strip():
                raise ConfigError(f"{where}: {key} is required (a non-empty string)")
        issuer = table["issuer"].strip().rstrip("/")
        _check_url(issuer, f"{where} issuer")
        scopes = table.get("scopes", cls.scopes)
        if isinstance(scopes, str):
            scopes = scopes.split()
        if not isinstance(scopes, list | tuple) or not all(isinstance(s, str) and s for s in scopes):
            raise ConfigError(f"{where}: scopes must be a list of strings, e.g. [\"openid\", \"profile\"]")
        if "openid" not in scopes:
            scopes = ["openid", *scopes]
        roles = table.get("roles", {})
        if not isinstance(roles, Mapping):
            raise ConfigError(f"{where}: roles must be a table of group = role, e.g. {{ \"ml-admins\" = \"admin\" }}")
        checked = []
        for group, role in roles.items():
            try:
                checked.append((str(group), check_role(str(role))))
            except ValueError as exc:
                raise ConfigError(f"{where} roles, group {group!r}: {exc}") from None
        default = table.get("default_role")
        if default is not None:
            try:
                check_role(str(default))
            except ValueError as exc:
                raise ConfigError(f"{where} default_role: {exc}") from None
        if not checked and default is None:
            raise ConfigError(f"{where}: map at least one group to a role in roles, or set default_role")
        secret_env = table.get("client_secret_env")
        if secret_env is not None and (not isinstance(secret_env, str) or not re.fullmatch(r"[A-Za-z_]\w*",
                                                                                        secret_env)):
            raise ConfigError(f"{where}: client_secret_env is the NAME of an environment variable holding the "
                              "secret (e.g. \"PARTYFLOW_OIDC_SECRET\"), not the secret itself")
        redirect = table.get("redirect_uri")
        if redirect is not None:
            _check_url(str(redirect), f"{where} redirect_uri")
        strings = {k: table.get(k, getattr(cls, k)) for k in ("name", "username_claim", "groups_claim")}
        for key, value in strings.items():
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}: {key} must be a non-empty string")
        return cls(issuer=issuer, client_id=table["client_id"].strip(), client_secret_env=secret_env,
                   scopes=tuple(scopes), roles=tuple(checked), default_role=default,
                   redirect_uri=str(redirect) if redirect else None, **strings)

    def client_secret(self) -> str | None:
        """The secret from its variable; ConfigError when the variable is named but not set."""
        if self.client_secret_env is None:
            return None
        value = os.environ.get(self.client_secret_env)
        if not value:
            raise ConfigError(f"config.toml [access.oidc] client_secret_env: the environment variable "
                              f"{self.client_secret_env} is not set; set it to the client secret from the "
                              "identity provider")
        return value

    def role_for(self, groups: list[str]) -> str | None:
        """The highest role any of the groups maps to, else the default role (None: refuse)."""
        mapping = dict(self.roles)
        found = [mapping[g] for g in groups if g in mapping]
        if found:
            return max(found, key=_ROLE_RANK.__getitem__)
        return self.default_role


@dataclass(frozen=True)
class OidcLogin:
    """A login the provider vouched for: our user name, the mapped role, and who it is at the provider."""

    user: str
    role: str
    subject: str  # "<issuer> <sub>": binds our user name to one account at one provider
    groups: tuple[str, ...]
    next: str


@dataclass(frozen=True)
class _Pending:
    verifier: str
    nonce: str
    redirect_uri: str
    next: str
    created: float


class OidcClient:
    """One provider, for one server: discovery and keys cached, started logins remembered until finished."""

    def __init__(self, config: OidcConfig, *, timeout_s: float = 10.0) -> None:
        try:
            import authlib  # noqa: F401
            import joserfc  # noqa: F401
        except ImportError:
            raise ConfigError("config.toml has [access.oidc], but OIDC login needs the oidc extra: "
                              "pip install 'partyflow[oidc]'") from None
        self.config = config
        self._secret = config.client_secret()
        self._timeout = timeout_s
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._discovery: tuple[float, dict[str, Any]] | None = None
        self._jwks: tuple[float, Any] | None = None
        self._lock = asyncio.Lock()

    # ---- the two steps ----------------------------------------------------------------------------------------

    async def begin(self, redirect_uri: str, next_path: str) -> tuple[str, str]:
        """The provider's authorization URL and the `state` the browser must bring back (set it in a cookie)."""
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        meta = await self.discover()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        self._expire()
        while len(self._pending) >= MAX_PENDING:
            self._pending.popitem(last=False)
        self._pending[state] = _Pending(verifier, nonce, redirect_uri, next_path, time.monotonic())
        client = AsyncOAuth2Client(self.config.client_id, scope=" ".join(self.config.scopes),
                                   redirect_uri=redirect_uri, code_challenge_method="S256")
        url, _ = client.create_authorization_url(meta["authorization_endpoint"], state=state, nonce=nonce,
                                                 code_verifier=verifier)
        await client.aclose()
        return url, state

    async def finish(self, state: str, browser_state: str | None, code: str) -> OidcLogin:
        """Exchange the code and validate the ID token; AccessError with the reason for every refusal."""
        pending = self._pending.pop(state, None) if state else None
        if pending is None or time.monotonic() - pending.created > PENDING_LIFETIME_S:
            raise AccessError(400, "this login attempt is unknown or expired (the state does not match): "
                                   "start again from the login page")
        if not browser_state or not hmac.compare_digest(browser_state.encode(), state.encode()):
            raise AccessError(400, "this login was started in another browser (the state does not match the "
                                   "cookie): start again from the login page")
        if not code:
            raise AccessError(400, "the identity provider sent no authorization code: start again")
        tokens = await self._exchange(code, pending)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise AccessError(401, "the identity provider sent no ID token: check that the client asks for the "
                                   "'openid' scope")
        claims = await self._validate(id_token, pending.nonce)
        return self._login(claims, pending.next)

    # ---- provider metadata and keys ---------------------------------------------------------------------------

    async def discover(self) -> dict[str, Any]:
        async with self._lock:
            if self._discovery and time.monotonic() - self._discovery[0] < DISCOVERY_TTL_S:
                return self._discovery[1]
            url = self.config.issuer + DISCOVERY_PATH
            meta = await self._get_json(url, "the discovery document")
            if meta.get("issuer", "").rstrip("/") != self.config.issuer:
                raise AccessError(502, f"the discovery document at {url} names issuer {meta.get('issuer')!r}, "
                                       f"not {self.config.issuer!r}: fix issuer in [access.oidc]")
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(meta.get(key), str):
                    raise AccessError(502, f"the discovery document at {url} has no {key}")
            methods = meta.get("code_challenge_methods_supported")
            if methods is not None and "S256" not in methods:
                raise AccessError(502, "the identity provider does not support PKCE with S256, which partyflow "
                                       "requires")
            self._discovery = (time.monotonic(), meta)
            return meta

    async def _keys(self, *, refresh: bool) -> Any:
        from joserfc.jwk import KeySet

        async with self._lock:
            fresh = self._jwks is not None and time.monotonic() - self._jwks[0] < JWKS_REFRESH_MIN_S
            if self._jwks is not None and (not refresh or fresh):
                return self._jwks[1]
        meta = await self.discover()
        document = await self._get_json(meta["jwks_uri"], "the provider's keys (JWKS)")
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except Exception as exc:
            raise AccessError(502, f"the provider's keys (JWKS) cannot be read: {exc}") from None
        self._jwks = (time.monotonic(), keys)
        return keys

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                answer = await http.get(url, headers={"Accept": "application/json"})
            if answer.status_code != 200:
                raise AccessError(502, f"could not fetch {what} from {url}: HTTP {answer.status_code}")
            document = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AccessError(502, f"could not fetch {what} from {url}: {exc}") from None
        if not isinstance(document, dict):
            raise AccessError(502, f"{what} at {url} is not a JSON object")
        return document

    # ---- code exchange and ID token ---------------------------------------------------------------------------

    async def _exchange(self, code: str, pending: _Pending) -> dict[str, Any]:
        from authlib.integrations.base_client.errors import OAuthError
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        meta = await self.discover()
        supported = meta.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if self._secret is None:
            method = "none"
        else:
            method = "client_secret_post" if "client_secret_basic" not in supported and \
                "client_secret_post" in supported else "client_secret_basic"
        try:
            async with AsyncOAuth2Client(self.config.client_id, self._secret, token_endpoint_auth_method=method,
                                         redirect_uri=pending.redirect_uri, timeout=self._timeout) as client:
                token = await client.fetch_token(meta["token_endpoint"], grant_type="authorization_code",
                                                 code=code, code_verifier=pending.verifier)
        except OAuthError as exc:
            raise AccessError(401, f"the identity provider refused the code: {exc.error}"
                                   f"{' (' + exc.description + ')' if exc.description else ''}") from None
        except httpx.HTTPError as exc:
            raise AccessError(502, f"could not reach the identity provider's token endpoint: {exc}") from None
        return dict(token)

    async def _validate(self, id_token: str, nonce: str) -> dict[str, Any]:
        from joserfc import jwt
        from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError

        meta = await self.discover()
        algorithms = [a for a in meta.get("id_token_signing_alg_values_supported", ["RS256"])
                      if a in SIGNING_ALGORITHMS] or ["RS256"]
        try:
            try:
                token = jwt.decode(id_token, await self._keys(refresh=False), algorithms=algorithms)
            except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
                token = jwt.decode(id_token, await self._keys(refresh=True), algorithms=algorithms)
        except (BadSignatureError, InvalidKeyIdError):
            raise AccessError(401, "the ID token's signature does not match the identity provider's published "
                                   "keys: refused") from None
        except JoseError as exc:
            raise AccessError(401, f"the ID token cannot be verified: {exc}") from None
        claims = dict(token.claims)
        if str(claims.get("iss", "")).rstrip("/") != self.config.issuer:
            raise AccessError(401, f"the ID token was issued by {claims.get('iss')!r}, not {self.config.issuer!r}")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.config.client_id not in audiences:
            raise AccessError(401, "the ID token is meant for another client (aud does not include "
                                   f"{self.config.client_id!r})")
        if len(audiences) > 1 and claims.get("azp") != self.config.client_id:
            raise AccessError(401, "the ID token names several audiences but was not issued to this client (azp)")
        now = time.time()
        expires = claims.get("exp")
        if not isinstance(expires, int | float):
            raise AccessError(401, "the ID token has no expiry (exp): refused")
        if expires + CLOCK_LEEWAY_S < now:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expires))
            raise AccessError(401, f"the ID token expired at {stamp}: log in again (if this repeats, check the "
                                   "clocks of this server and the identity provider)")
        issued = claims.get("iat")
        if isinstance(issued, int | float) and issued - CLOCK_LEEWAY_S > now:
            raise AccessError(401, "the ID token was issued in the future: check this server's clock")
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise AccessError(401, "the ID token's nonce does not match this login attempt (a replayed or "
                                   "substituted token): start again from the login page")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AccessError(401, "the ID token has no subject (sub)")
        return claims

    def _login(self, claims: dict[str, Any], next_path: str) -> OidcLogin:
        raw_name = claims.get(self.config.username_claim)
        if not isinstance(raw_name, str) or not raw_name.strip():
            raise AccessError(403, f"the identity provider did not send the {self.config.username_claim!r} claim "
                                   "that names your user here: ask an admin to check username_claim and scopes")
        user = user_name(raw_name)
        if user is None:
            raise AccessError(403, f"{raw_name!r} cannot be made into a user name here: ask an admin")
        raw_groups = claims.get(self.config.groups_claim, [])
        groups = [raw_groups] if isinstance(raw_groups, str) else [str(g) for g in raw_groups or []
                                                                   if isinstance(g, str | int)]
        role = self.config.role_for(groups)
        if role is None:
            raise OidcRefused(403, f"none of your groups at {self.config.name} is given a role on this server: "
                                   "ask an admin to map one of them in [access.oidc] roles", user)
        return OidcLogin(user, role, f"{self.config.issuer} {claims['sub']}", tuple(groups), next_path)

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            state, pending = next(iter(self._pending.items()))
            if now - pending.created <= PENDING_LIFETIME_S:
                break
            del self._pending[state]


def user_name(raw: str) -> str | None:
    """A provider's user name in the store's rules: runs of other characters become `_`, at most 64
    characters, not starting with `.` or `-` (`Ada Lovelace@corp` -> `Ada_Lovelace_corp`)."""
    name = _NAME_CHARS.sub("_", raw.strip()).lstrip(".-")[:64]
    return name or None


def _check_url(url: str, where: str) -> None:
    """https, except for a provider on this machine (tests, a local Keycloak)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return
    raise ConfigError(f"{where}: {url!r} must be an https URL (http only for a provider on this machine)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
