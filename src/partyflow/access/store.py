"""Users, API tokens and browser sessions in the home's state.sqlite.

Secrets are never stored: a token is `pf_<id>_<secret>`; the public id finds the row and only the SHA-256 of the
secret is kept (the secret is 256 random bits, so a fast hash is enough and comparison is constant-time). A
password is kept as a salted scrypt hash. Browser sessions are random ids stored the same way as tokens.
Removing a user removes their tokens and sessions in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from partyflow.access.roles import AccessError, Identity, check_role, parse_scopes
from partyflow.store.sqlite import StoreConnection, migrate, open_database, transaction

COMPONENT = "access"
MIGRATIONS = [
    """
    CREATE TABLE access_users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        password TEXT,
        created TEXT NOT NULL
    );
    CREATE TABLE access_tokens (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES access_users (name) ON DELETE CASCADE,
        secret_hash TEXT NOT NULL,
        label TEXT,
        scopes TEXT,
        created TEXT NOT NULL,
        expires TEXT,
        last_used TEXT,
        revoked TEXT
    );
    CREATE INDEX access_tokens_user ON access_tokens (user);
    CREATE TABLE access_sessions (
        secret_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES access_users (name) ON DELETE CASCADE,
        created TEXT NOT NULL,
        expires TEXT NOT NULL
    );
    """,
    # users who log in through an identity provider (OIDC): "<issuer> <sub>", binding the name to that account
    "ALTER TABLE access_users ADD COLUMN external TEXT;",
]
USER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")  # also the user's data directory name
TOKEN_PREFIX = "pf_"
SESSION_LIFETIME = timedelta(hours=12)
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used is written at most this often per token
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: str
    disabled: bool
    has_password: bool
    created: str
    sso: bool = False  # created by a single sign-on login (bound to an account at the identity provider)


@dataclass(frozen=True)
class TokenInfo:
    id: str
    user: str
    label: str | None
    scopes: tuple[str, ...]
    created: str
    expires: str | None
    last_used: str | None
    revoked: str | None


class AccessStore:
    """The access tables of one state.sqlite; open, use, close (or `with`)."""

    def __init__(self, db: Path) -> None:
        self.conn: StoreConnection = open_database(db)
        self.conn.execute("PRAGMA foreign_keys = ON")
        migrate(self.conn, COMPONENT, MIGRATIONS)

    def __enter__(self) -> AccessStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    # ---- users ------------------------------------------------------------------------------------------------

    def has_users(self) -> bool:
        with transaction(self.conn, write=False):
            return self.conn.execute("SELECT 1 FROM access_users LIMIT 1").fetchone() is not None

    def add_user(self, name: str, role: str, password: str | None = None) -> UserInfo:
        if not USER_NAME.match(name):
            raise ValueError(f"user name {name!r} must be 1-64 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
        check_role(role)
        created = _now()
        with transaction(self.conn):
            if self._user_row(name) is not None:
                raise ValueError(f"user {name!r} already exists")
            self.conn.execute("INSERT INTO access_users (name, role, password, created) VALUES (?, ?, ?, ?)",
                              (name, role, _hash_password(password) if password else None, created))
        return UserInfo(name, role, False, bool(password), created)

    def users(self) -> list[UserInfo]:
        with transaction(self.conn, write=False):
            rows = self.conn.execute(
                "SELECT name, role, disabled, password IS NOT NULL, created, external IS NOT NULL FROM access_users "
                "ORDER BY name")
            return [UserInfo(r[0], r[1], bool(r[2]), bool(r[3]), r[4], bool(r[5])) for r in rows]

    def user(self, name: str) -> UserInfo:
        with transaction(self.conn, write=False):
            row = self._user_row(name)
        if row is None:
            raise LookupError(f"no user {name!r} (partyflow users list shows them)")
        return UserInfo(row[0], row[1], bool(row[2]), row[3] is not None, row[4], row[5] is not None)

    def set_role(self, name: str, role: str) -> None:
        check_role(role)
        self._update_user(name, "UPDATE access_users SET role = ? WHERE name = ?", (role, name))

    def set_disabled(self, name: str, disabled: bool) -> None:
        with transaction(self.conn):
            self._update_user(name, "UPDATE access_users SET disabled = ? WHERE name = ?", (int(disabled), name))
            if disabled:
                self.conn.execute("DELETE FROM access_sessions WHERE user = ?", (name,))

    def set_password(self, name: str, password: str) -> None:
        if len(password) < 8:
            raise ValueError("a password needs at least 8 characters")
        self._update_user(name, "UPDATE access_users SET password = ? WHERE name = ?",
                          (_hash_password(password), name))

    def remove_user(self, name: str) -> None:
        self._update_user(name, "DELETE FROM access_users WHERE name = ?", (name,))

    def _update_user(self, name: str, sql: str, params: tuple[object, ...]) -> None:
        with transaction(self.conn):
            if self.conn.execute(sql, params).rowcount == 0:
                raise LookupError(f"no user {name!r} (partyflow users list shows them)")

    def _user_row(self, name: str) -> tuple[str, str, int, str | None, str, str | None] | None:
        return self.conn.execute("SELECT name, role, disabled, password, created, external FROM access_users "
                                 "WHERE name = ?", (name,)).fetchone()

    # ---- tokens -----------------------------------------------------------------------------------------------

    def create_token(self, user: str, *, expires_in: timedelta | None = None, scopes: tuple[str, ...] = (),
                     label: str | None = None) -> tuple[str, TokenInfo]:
        """A new token for `user`: returns the token text (shown once, never stored) and its record."""
        checked = tuple(sorted(parse_scopes(scopes)))
        token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        created = _now()
        expires = (datetime.now(UTC) + expires_in).isoformat(timespec="seconds") if expires_in else None
        with transaction(self.conn):
            if self._user_row(user) is None:
                raise LookupError(f"no user {user!r} (partyflow users list shows them)")
            self.conn.execute(
                "INSERT INTO access_tokens (id, user, secret_hash, label, scopes, created, expires) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (token_id, user, _digest(secret), label, " ".join(checked) or None, created, expires))
        return f"{TOKEN_PREFIX}{token_id}_{secret}", TokenInfo(token_id, user, label, checked, created, expires,
                                                                 None, None)

    def tokens(self, user: str | None = None) -> list[TokenInfo]:
        sql = "SELECT id, user, label, scopes, created, expires, last_used, revoked FROM access_tokens"
        with transaction(self.conn, write=False):
            rows = self.conn.execute(sql + (" WHERE user = ?" if user else "") + " ORDER BY created",
                                     (user,) if user else ()).fetchall()
        return [TokenInfo(r[0], r[1], r[2], tuple((r[3] or "").split()), r[4], r[5], r[6], r[7]) for r in rows]

    def revoke_token(self, token_id: str) -> None:
        with transaction(self.conn):
            if self.conn.execute("UPDATE access_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                                 (_now(), token_id)).rowcount == 0:
                raise LookupError(f"no active token with id {token_id!r} (partyflow tokens list shows them)")

    def authenticate_token(self, text: str) -> Identity:
        """The identity a token stands for; AccessError(401/403) with a reason the holder can act on."""
        token_id, secret = _split_token(text)
        with transaction(self.conn, write=False):
            row = self.conn.execute(
                "SELECT t.secret_hash, t.scopes, t.expires, t.revoked, t.last_used, u.name, u.role, u.disabled "
                "FROM access_tokens t JOIN access_users u ON u.name = t.user WHERE t.id = ?",
                (token_id,)).fetchone() if token_id else None
        if row is None or not hmac.compare_digest(row[0], _digest(secret)):
            raise AccessError(401, "the token is not valid: check that it was copied whole, or create a new one "
                                   "with 'partyflow tokens create'")
        secret_hash, scopes, expires, revoked, last_used, name, role, disabled = row
        if revoked:
            raise AccessError(401, f"the token was revoked on {revoked[:10]}: ask an admin for a new one")
        now = datetime.now(UTC)
        if expires and datetime.fromisoformat(expires) <= now:
            raise AccessError(401, f"the token expired on {expires[:10]}: create a new one")
        if disabled:
            raise AccessError(403, f"user {name!r} is disabled: ask an admin to enable the account")
        if last_used is None or datetime.fromisoformat(last_used) + LAST_USED_RESOLUTION <= now:
            with transaction(self.conn):
                self.conn.execute("UPDATE access_tokens SET last_used = ? WHERE id = ?", (_now(), token_id))
        return Identity(name, role, "token", frozenset(scopes.split()) if scopes else None)

    # ---- browser sessions -------------------------------------------------------------------------------------

    def login(self, name: str, password: str) -> str:
        """A new session id for a user whose password matches; one generic refusal for every failure."""
        with transaction(self.conn, write=False):
            row = self._user_row(name) if USER_NAME.match(name or "") else None
        stored = row[3] if row else None
        if not _check_password(password, stored) or row is None:
            raise AccessError(401, "wrong user name or password")
        if row[2]:
            raise AccessError(403, f"user {name!r} is disabled: ask an admin to enable the account")
        return self._open_session(name)

    def external_login(self, name: str, role: str, subject: str) -> tuple[str, str | None]:
        """A session for a user an identity provider vouched for: created on first login (no password), its role
        set to what the provider's groups map to now. Returns (session, what changed: "created", "role <old> ->
        <new>" or None). A name taken by a local account or another provider account is refused."""
        check_role(role)
        if not USER_NAME.match(name):
            raise AccessError(403, f"{name!r} is not a valid user name here: ask an admin")
        changed: str | None = None
        with transaction(self.conn):
            row = self.conn.execute("SELECT role, disabled, external FROM access_users WHERE name = ?",
                                    (name,)).fetchone()
            if row is None:
                self.conn.execute("INSERT INTO access_users (name, role, created, external) VALUES (?, ?, ?, ?)",
                                  (name, role, _now(), subject))
                changed = "created"
            elif row[2] != subject:
                raise AccessError(403, f"the user name {name!r} belongs to another account on this server: ask "
                                       "an admin to rename or remove it")
            elif row[1]:
                raise AccessError(403, f"user {name!r} is disabled: ask an admin to enable the account")
            elif row[0] != role:
                self.conn.execute("UPDATE access_users SET role = ? WHERE name = ?", (role, name))
                changed = f"role {row[0]} -> {role}"
        return self._open_session(name), changed

    def _open_session(self, name: str) -> str:
        session = secrets.token_urlsafe(32)
        with transaction(self.conn):
            self.conn.execute("DELETE FROM access_sessions WHERE expires <= ?", (_now(),))
            self.conn.execute("INSERT INTO access_sessions (secret_hash, user, created, expires) VALUES (?, ?, ?, ?)",
                              (_digest(session), name, _now(),
                               (datetime.now(UTC) + SESSION_LIFETIME).isoformat(timespec="seconds")))
        return session

    def session(self, session: str) -> Identity:
        with transaction(self.conn, write=False):
            row = self.conn.execute(
                "SELECT s.expires, u.name, u.role, u.disabled FROM access_sessions s "
                "JOIN access_users u ON u.name = s.user WHERE s.secret_hash = ?", (_digest(session),)).fetchone()
        if row is None or datetime.fromisoformat(row[0]) <= datetime.now(UTC):
            raise AccessError(401, "your session has ended: log in again")
        if row[3]:
            raise AccessError(403, f"user {row[1]!r} is disabled: ask an admin to enable the account")
        return Identity(row[1], row[2], "session")

    def logout(self, session: str) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM access_sessions WHERE secret_hash = ?", (_digest(session),))


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` -> a timedelta; ValueError with the accepted forms."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"duration {text!r}: give a number and a unit, e.g. 90m, 12h, 30d or 2w")
    unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def _split_token(text: str) -> tuple[str | None, str]:
    if not text.startswith(TOKEN_PREFIX):
        return None, text
    token_id, _, secret = text[len(TOKEN_PREFIX):].partition("_")
    return (token_id or None), secret


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${key.hex()}"


def _check_password(password: str, stored: str | None) -> bool:
    if not stored or not password:
        hashlib.scrypt(b"x", salt=b"0" * 16, **_SCRYPT)  # the same work whether or not the user exists
        return False
    _, salt, key = stored.split("$")
    return hmac.compare_digest(hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), **_SCRYPT).hex(), key)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
