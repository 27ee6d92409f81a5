"""The home's keyring: Ed25519 signing keys we own, public keys we trust, and keys we no longer trust.

Layout under `<home>/keys/` (0700):
* `private/<key id>.pem` (0600): PKCS#8 private keys made by `generate`; the public half is also trusted.
* `keyring.json`: trusted public keys by key id, each with a name, when it was added, an optional expiry and,
  once revoked, when and why. Revoked ids stay listed so a signature by them is refused with the reason
  "revoked" rather than "unknown", and trusting the same key again needs an explicit `trust --force`.
* `sequence.json`: the last bundle sequence number signed with each private key (replay protection counts on
  a signer's numbers only going up).

A key id is the first 16 hex digits of the sha256 of the raw public key; lookups always compare the full key,
so the short id is only a name. Exported public keys are one line: `partyflow-ed25519 <base64> <name>
[expires=<ISO date>]`, short enough to paste into a chat or a config management tool.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from partyflow.config import Home
from partyflow.manager.errors import ManagerError
from partyflow.manager.provenance import atomic_write_json

__all__ = ["EXPORT_PREFIX", "KeyringError", "KeyInfo", "Keyring", "Signer", "key_id_of", "parse_time"]

EXPORT_PREFIX = "partyflow-ed25519"
FORMAT = "partyflow-keyring/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class KeyringError(ManagerError):
    """A key that cannot be made, found, parsed or used; nothing in the keyring changed."""


@dataclass(frozen=True)
class KeyInfo:
    """One public key the keyring knows, with its trust state."""

    key_id: str
    name: str
    public_key: bytes                 # 32 raw bytes
    added: str
    expires: str | None = None        # ISO 8601; signatures are refused after it
    revoked: str | None = None        # ISO 8601 of the revocation
    revoke_reason: str | None = None
    has_private: bool = False

    def expired(self, now: datetime | None = None) -> bool:
        return self.expires is not None and (now or datetime.now(UTC)) >= parse_time(self.expires)

    def status(self, now: datetime | None = None) -> str:
        if self.revoked:
            return "revoked"
        return "expired" if self.expired(now) else "trusted"

    def export_line(self) -> str:
        line = f"{EXPORT_PREFIX} {base64.b64encode(self.public_key).decode()} {self.name}"
        return line + (f" expires={self.expires}" if self.expires else "")

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "status": self.status(now), "added": self.added,
                "expires": self.expires, "revoked": self.revoked, "revoke_reason": self.revoke_reason,
                "private": self.has_private, "public_key": base64.b64encode(self.public_key).decode()}


@dataclass(frozen=True)
class Signer:
    """A private key ready to sign, with the identity a verifier will look up."""

    key_id: str
    name: str
    private_key: Any                  # cryptography's Ed25519PrivateKey (imported lazily)

    def sign(self, message: bytes) -> bytes:
        return bytes(self.private_key.sign(message))


def key_id_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def parse_time(text: str) -> datetime:
    """An ISO date or date-time; naive values are UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise KeyringError(f"{text!r} is not an ISO date or date-time", user_error=True,
                        hint="for example 2027-01-31 or 2027-01-31T12:00:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _crypto() -> Any:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:  # pragma: no cover - a declared dependency; the message is for broken installs
        raise KeyringError("signing needs the 'cryptography' package", hint="pip install cryptography") from None
    return ed25519


class Keyring:
    """The keys of one home. Every method reads the files afresh, so two processes see each other's changes."""

    def __init__(self, home: Home | Path | str) -> None:
        root = home.root if isinstance(home, Home) else Path(home)
        self.root = root / "keys"

    # --- files ----------------------------------------------------------------------------------------------

    @property
    def private_dir(self) -> Path:
        return self.root / "private"

    @property
    def ring_file(self) -> Path:
        return self.root / "keyring.json"

    @property
    def sequence_file(self) -> Path:
        return self.root / "sequence.json"

    def _ensure(self) -> None:
        for folder in (self.root, self.private_dir):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.ring_file.exists():
            return {}
        try:
            data = json.loads(self.ring_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise KeyringError(f"{self.ring_file}: not valid JSON ({exc})", hint="restore it from a backup") from exc
        return dict(data.get("keys", {}))

    def _save(self, keys: dict[str, dict[str, Any]]) -> None:
        self._ensure()
        atomic_write_json(self.ring_file, {"format": FORMAT, "keys": dict(sorted(keys.items()))})

    def _info(self, key_id: str, raw: dict[str, Any]) -> KeyInfo:
        return KeyInfo(key_id=key_id, name=str(raw["name"]), public_key=base64.b64decode(raw["public_key"]),
                       added=str(raw.get("added", "")), expires=raw.get("expires"), revoked=raw.get("revoked"),
                       revoke_reason=raw.get("revoke_reason"),
                       has_private=(self.private_dir / f"{key_id}.pem").is_file())

    @staticmethod
    def _raw(info: KeyInfo) -> dict[str, Any]:
        return {"name": info.name, "public_key": base64.b64encode(info.public_key).decode(), "added": info.added,
                "expires": info.expires, "revoked": info.revoked, "revoke_reason": info.revoke_reason}

    # --- queries --------------------------------------------------------------------------------------------

    def keys(self) -> list[KeyInfo]:
        """Every key the keyring lists (trusted, expired and revoked), by name."""
        return sorted((self._info(k, v) for k, v in self._load().items()), key=lambda i: (i.name, i.key_id))

    def get(self, key_id: str) -> KeyInfo | None:
        raw = self._load().get(key_id)
        return self._info(key_id, raw) if raw is not None else None

    def find(self, name_or_id: str) -> KeyInfo:
        """A key by name or id (or an unambiguous id prefix of at least 6 digits)."""
        keys = self.keys()
        hits = [k for k in keys if name_or_id in (k.name, k.key_id)]
        if not hits and len(name_or_id) >= 6:
            hits = [k for k in keys if k.key_id.startswith(name_or_id.lower())]
        if len(hits) == 1:
            return hits[0]
        known = ", ".join(f"{k.name} ({k.key_id})" for k in keys) or "none"
        problem = "matches several keys" if hits else "is not in the keyring"
        raise KeyringError(f"key {name_or_id!r} {problem}", user_error=True, hint=f"known keys: {known}")

    # --- changes --------------------------------------------------------------------------------------------

    def generate(self, name: str, *, expires: str | None = None) -> KeyInfo:
        """A new Ed25519 key pair: the private key written 0600, the public key trusted under `name`."""
        _check_name(name)
        if expires is not None:
            parse_time(expires)
        keys = self._load()
        if any(raw["name"] == name for raw in keys.values()):
            raise KeyringError(f"a key named {name!r} already exists", user_error=True, hint="choose another name")
        from cryptography.hazmat.primitives import serialization

        private = _crypto().Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        key_id = key_id_of(public)
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        self._ensure()
        path = self.private_dir / f"{key_id}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        info = KeyInfo(key_id, name, public, _now(), expires=expires)
        keys[key_id] = self._raw(info)
        self._save(keys)
        return replace(info, has_private=True)

    def trust(self, public: str, *, name: str | None = None, expires: str | None = None,
              force: bool = False) -> KeyInfo:
        """Trust a public key given as an export line (or a file holding one) or a bare base64 key."""
        raw_key, line_name, line_expires = parse_public(public)
        name = name or line_name
        if not name:
            raise KeyringError("a trusted key needs a name", user_error=True, hint="pass --name")
        _check_name(name)
        expires = expires or line_expires
        if expires is not None:
            parse_time(expires)
        key_id = key_id_of(raw_key)
        keys = self._load()
        clash = [k for k, raw in keys.items() if raw["name"] == name and k != key_id]
        if clash:
            raise KeyringError(f"another key ({clash[0]}) is already trusted as {name!r}", user_error=True,
                            hint="choose another --name")
        old = keys.get(key_id)
        if old is not None and old.get("revoked") and not force:
            raise KeyringError(f"key {key_id} ({old['name']}) was revoked on {old['revoked']}", user_error=True,
                            hint="pass --force to trust it again")
        info = KeyInfo(key_id, name, raw_key, old.get("added", _now()) if old else _now(), expires=expires)
        keys[key_id] = self._raw(info)
        self._save(keys)
        return self._info(key_id, keys[key_id])

    def revoke(self, name_or_id: str, *, reason: str = "") -> KeyInfo:
        """Stop trusting a key (ours or another's); its id stays listed so its signatures read as revoked."""
        info = self.find(name_or_id)
        keys = self._load()
        keys[info.key_id] = self._raw(replace(info, revoked=info.revoked or _now(), revoke_reason=reason or None))
        self._save(keys)
        return self._info(info.key_id, keys[info.key_id])

    def export(self, name_or_id: str) -> str:
        return self.find(name_or_id).export_line()

    def signer(self, name_or_id: str | None = None) -> Signer:
        """A private key to sign with: the named one, or the only usable one this keyring holds."""
        if name_or_id is None:
            own = [k for k in self.keys() if k.has_private and not k.revoked and not k.expired()]
            if len(own) != 1:
                what = "no signing key" if not own else f"{len(own)} signing keys"
                raise KeyringError(f"this home has {what}", user_error=True,
                                hint="run 'partyflow keys generate NAME'" if not own else "pass --key NAME")
            info = own[0]
        else:
            info = self.find(name_or_id)
        if not info.has_private:
            raise KeyringError(f"key {info.name} ({info.key_id}) is trusted here, but its private key is not",
                            user_error=True, hint="sign on the machine that generated it")
        if info.revoked or info.expired():
            raise KeyringError(f"key {info.name} ({info.key_id}) is {info.status()}; it may not sign",
                            user_error=True, hint="generate a new key and have verifiers trust it")
        from cryptography.hazmat.primitives import serialization

        pem = (self.private_dir / f"{info.key_id}.pem").read_bytes()
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, _crypto().Ed25519PrivateKey):
            raise KeyringError(f"{self.private_dir / (info.key_id + '.pem')} is not an Ed25519 key")
        return Signer(info.key_id, info.name, private)

    # --- sequence numbers -----------------------------------------------------------------------------------

    def last_sequence(self, key_id: str) -> int:
        if not self.sequence_file.exists():
            return 0
        return int(json.loads(self.sequence_file.read_text(encoding="utf-8")).get(key_id, 0))

    def note_sequence(self, key_id: str, sequence: int) -> None:
        """Remember the highest sequence number signed with `key_id` (never lowers it)."""
        data: dict[str, int] = {}
        if self.sequence_file.exists():
            data = json.loads(self.sequence_file.read_text(encoding="utf-8"))
        data[key_id] = max(int(data.get(key_id, 0)), sequence)
        self._ensure()
        atomic_write_json(self.sequence_file, data)


def parse_public(text: str) -> tuple[bytes, str | None, str | None]:
    """(raw key, name, expires) from an export line, a file holding one, or bare base64."""
    candidate = Path(text).expanduser()
    if len(text) < 4096 and "\n" not in text and candidate.is_file():
        text = candidate.read_text(encoding="utf-8")
    parts = text.strip().split()
    name = expires = None
    if parts and parts[0] == EXPORT_PREFIX:
        if len(parts) < 2:
            raise KeyringError("the public key line has no key after its prefix", user_error=True)
        encoded = parts[1]
        for extra in parts[2:]:
            if extra.startswith("expires="):
                expires = extra.split("=", 1)[1]
            elif name is None:
                name = extra
    elif len(parts) == 1:
        encoded = parts[0]
    else:
        raise KeyringError("not a public key: expected 'partyflow-ed25519 <base64> <name>' or a base64 key",
                        user_error=True, hint="get one with 'partyflow keys export NAME'")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError("the public key is not valid base64", user_error=True) from None
    if len(raw) != 32:
        raise KeyringError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}", user_error=True)
    return raw, name, expires


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise KeyringError(f"{name!r} is not a usable key name", user_error=True,
                        hint="letters, digits and . _ @ - (up to 64)")
