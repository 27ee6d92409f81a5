"""The audit log's anchor: an Ed25519 key of this home that signs the chain's newest record after every append.

Why: a SHA-256 chain only proves that records fit each other. Whoever can write state.sqlite can also delete the
newest records (and reset SQLite's id counter) or edit a record and recompute every later hash; both leave a chain
that fits. A signature over "the log ends at record N with hash H", made with a key that is not in the database,
turns both into a mismatch unless the key is stolen too; an anchor file copied elsewhere (`partyflow audit anchor`)
holds even against that, for every record up to the one it names.

Why Ed25519 and not an HMAC: an anchor can then be checked with the public key alone, which the anchor file
carries, and it is the signature scheme the keyring already uses. The key is the home's own, kept apart from the
keyring (`keys/audit/`, 0600) so it never becomes a candidate for signing bundles or catalogs.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from partyflow.manager.errors import ManagerError
from partyflow.manager.keys import key_id_of
from partyflow.manager.signing import canonical_json

__all__ = ["ANCHOR_FORMAT", "HEAD_FORMAT", "AuditError", "AuditKey", "SignedHead", "read_anchor"]

HEAD_FORMAT = "partyflow-audit-head/1"
ANCHOR_FORMAT = "partyflow-audit-anchor/1"
_DOMAIN = b"partyflow-audit-head\0"


class AuditError(ManagerError):
    """The audit log cannot be read or written as it is (its table was dropped, an anchor file is malformed)."""


@dataclass(frozen=True)
class SignedHead:
    """What one signature vouches for: the log ends at record `last_id`, whose hash is `head`. `broken` is set
    (and carried into every later head) when a record was appended to a log that no longer matched its signed
    head, so tampering stays visible after later appends re-sign the end of the chain."""

    last_id: int
    head: str
    broken: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        return {"format": HEAD_FORMAT, "last_id": self.last_id, "head": self.head, "broken": self.broken}

    @classmethod
    def from_payload(cls, data: Any) -> SignedHead:
        if not isinstance(data, dict) or data.get("format") != HEAD_FORMAT:
            raise ValueError("not a signed audit head")
        last_id, head, broken = data.get("last_id"), data.get("head"), data.get("broken")
        if isinstance(last_id, bool) or not isinstance(last_id, int) or not isinstance(head, str) \
                or not (broken is None or isinstance(broken, dict)):
            raise ValueError("a signed audit head needs an integer last_id, a string head and an optional broken")
        return cls(last_id, head, broken)


class AuditKey:
    """The home's audit signing key under `<keys>/audit/`: made on first use, read afresh by each process."""

    def __init__(self, keys_dir: Path) -> None:
        self.folder = keys_dir / "audit"
        self._private: Any = None

    @property
    def private_file(self) -> Path:
        return self.folder / "ed25519.pem"

    def exists(self) -> bool:
        return self.private_file.is_file()

    def _load(self, create: bool) -> Any:
        if self._private is not None:
            return self._private
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        if not self.exists():
            if not create:
                raise AuditError(f"the audit key {self.private_file} is missing",
                                 hint="it was deleted or the home was copied without keys/; the signed head "
                                      "cannot be checked")
            self._create(ed25519, serialization)
        try:
            private = serialization.load_pem_private_key(self.private_file.read_bytes(), password=None)
        except (ValueError, TypeError, OSError) as exc:
            raise AuditError(f"the audit key {self.private_file} cannot be read ({exc})") from None
        if not isinstance(private, ed25519.Ed25519PrivateKey):
            raise AuditError(f"{self.private_file} is not an Ed25519 key")
        self._private = private
        return private

    def _create(self, ed25519: Any, serialization: Any) -> None:
        for folder in (self.folder.parent, self.folder):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o700)
        pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        partial = self.folder / f".ed25519.{os.getpid()}.tmp"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(partial, self.private_file)  # never replaces a key another process made first
        except FileExistsError:
            pass
        finally:
            partial.unlink(missing_ok=True)

    def public_key(self, *, create: bool = False) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return bytes(self._load(create).public_key().public_bytes(serialization.Encoding.Raw,
                                                                  serialization.PublicFormat.Raw))

    def key_id(self, *, create: bool = False) -> str:
        return key_id_of(self.public_key(create=create))

    def sign(self, head: SignedHead) -> str:
        signature = self._load(True).sign(_message(head.payload()))
        return base64.b64encode(bytes(signature)).decode()

    def verify(self, head: SignedHead, signature: str) -> bool:
        return check_signature(self.public_key(), head.payload(), signature)


def check_signature(public_key: bytes, payload: dict[str, Any], signature: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(signature, validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(raw, _message(payload))
    except (InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
    return True


def _message(payload: dict[str, Any]) -> bytes:
    return _DOMAIN + canonical_json(payload)


def anchor_document(key: AuditKey, head: SignedHead, signature: str, records: int) -> dict[str, Any]:
    """An anchor file's content: the signed head plus the public key that checks it, for safekeeping elsewhere."""
    public = key.public_key()
    return {"format": ANCHOR_FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "records": records, "key_id": key_id_of(public), "public_key": base64.b64encode(public).decode(),
            "signed_head": head.payload(), "signature": signature}


@dataclass(frozen=True)
class Anchor:
    key_id: str
    public_key: bytes
    head: SignedHead
    created: str


def read_anchor(path: Path) -> Anchor:
    """Parse and self-check an anchor file; raises AuditError saying what is wrong with it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuditError(f"no such anchor file: {path}", user_error=True) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuditError(f"{path}: not an audit anchor ({exc})", user_error=True) from None
    if not isinstance(data, dict) or data.get("format") != ANCHOR_FORMAT:
        raise AuditError(f"{path}: not an audit anchor (no format {ANCHOR_FORMAT!r})", user_error=True)
    try:
        public = base64.b64decode(str(data.get("public_key", "")), validate=True)
        head = SignedHead.from_payload(data.get("signed_head"))
    except (binascii.Error, ValueError) as exc:
        raise AuditError(f"{path}: malformed audit anchor ({exc})", user_error=True) from None
    if len(public) != 32 or key_id_of(public) != data.get("key_id"):
        raise AuditError(f"{path}: the anchor's public key does not match its key id", user_error=True)
    if not check_signature(public, head.payload(), str(data.get("signature", ""))):
        raise AuditError(f"{path}: the anchor does not match its own signature (it was edited)", user_error=True)
    return Anchor(str(data["key_id"]), public, head, str(data.get("created", "")))
