"""Detached Ed25519 signatures over canonical JSON, checked against the home's keyring.

What is signed is always a JSON value in canonical form (sorted keys, no spaces, UTF-8), prefixed by a purpose
(`bundle`, `catalog`, `catalog-entry`, `pack`), so a signature made for one kind of document can never be replayed
as another. A signature travels as one string, `ed25519:<key id>:<base64>`, which fits the `signature` field our
catalog format reserves, a bundle's `manifest.sig` and a pack's `partyflow-signature.json`.

Verification fails with one `Reason` a user can act on: the key is unknown, revoked or expired, the signature
does not match, or a file's hash differs from the signed manifest.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partyflow.config import Home, Settings
from partyflow.manager.errors import ManagerError
from partyflow.manager.keys import KeyInfo, Keyring, Signer

if TYPE_CHECKING:
    from partyflow.security.policy import SignatureStatus

__all__ = [
    "PACK_SIGNATURE_FILE", "CatalogTrust", "Reason", "SignatureError", "SignatureRef", "Verified", "canonical_json",
    "check_channel", "pack_manifest", "pack_signature_status", "sign", "sign_catalog", "sign_pack", "sign_snapshot",
    "verify", "verify_catalog", "verify_pack", "verify_snapshot",
]

PACK_SIGNATURE_FILE = "partyflow-signature.json"
PACK_FORMAT = "partyflow-pack-manifest/1"
_DOMAIN = b"partyflow-signature/1\0"
_SKIP_DIRS = frozenset({".git", "__pycache__"})


class Reason(enum.Enum):
    UNSIGNED = "unsigned"
    MALFORMED = "malformed signature"
    UNKNOWN_KEY = "unknown key"
    REVOKED_KEY = "revoked key"
    EXPIRED = "expired key"
    BAD_SIGNATURE = "bad signature"
    HASH_MISMATCH = "hash mismatch"


_HINTS = {
    Reason.UNSIGNED: "ask the publisher for a signed copy",
    Reason.UNKNOWN_KEY: "if you trust the signer, add their key with 'partyflow keys trust'",
    Reason.REVOKED_KEY: "the signer's key was revoked: get a copy signed with their new key",
    Reason.EXPIRED: "the signer's key expired: get a copy signed with a current key, or renew the trust",
    Reason.BAD_SIGNATURE: "the content changed after it was signed: do not use it",
    Reason.HASH_MISMATCH: "a file changed after it was signed: do not use it",
}


class SignatureError(ManagerError):
    """A signature or a signed hash that does not check out; `reason` says which rule failed."""

    def __init__(self, reason: Reason, message: str, *, key: KeyInfo | None = None, key_id: str | None = None,
                 path: str | None = None) -> None:
        self.reason = reason
        self.key = key
        self.key_id = key_id or (key.key_id if key else None)
        self.path = path
        super().__init__(f"{reason.value}: {message}", hint=_HINTS.get(reason), user_error=True)


@dataclass(frozen=True)
class SignatureRef:
    key_id: str
    value: bytes

    def encode(self) -> str:
        return f"ed25519:{self.key_id}:{base64.b64encode(self.value).decode()}"

    @classmethod
    def decode(cls, text: Any) -> SignatureRef:
        parts = text.split(":") if isinstance(text, str) else []
        if len(parts) != 3 or parts[0] != "ed25519" or len(parts[1]) != 16:
            raise SignatureError(Reason.MALFORMED, f"expected 'ed25519:<key id>:<base64>', got {str(text)[:60]!r}")
        try:
            value = base64.b64decode(parts[2], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(Reason.MALFORMED, "the signature is not valid base64") from None
        if len(value) != 64:
            raise SignatureError(Reason.MALFORMED, f"an Ed25519 signature has 64 bytes, this one {len(value)}")
        return cls(parts[1].lower(), value)


@dataclass(frozen=True)
class Verified:
    """A signature that checked out, and the trusted key that made it."""

    key: KeyInfo
    digest: str                      # sha256 of the canonical payload: names exactly what was signed


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value that signer and verifier both hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _message(purpose: str, payload: Any) -> bytes:
    return _DOMAIN + purpose.encode() + b"\0" + canonical_json(payload)


def sign(signer: Signer, purpose: str, payload: Any) -> str:
    """The signature string for `payload` (any JSON value) under `purpose`."""
    return SignatureRef(signer.key_id, signer.sign(_message(purpose, payload))).encode()


def verify(keyring: Keyring, purpose: str, payload: Any, signature: Any, *, what: str = "the document",
           now: datetime | None = None) -> Verified:
    """Check `signature` over `payload` against the keyring; raises SignatureError with the reason."""
    if signature in (None, ""):
        raise SignatureError(Reason.UNSIGNED, f"{what} carries no signature")
    ref = SignatureRef.decode(signature)
    key = keyring.get(ref.key_id)
    if key is None:
        raise SignatureError(Reason.UNKNOWN_KEY, f"{what} is signed by key {ref.key_id}, which this home does "
                             "not trust", key_id=ref.key_id)
    if key.revoked:
        why = f" ({key.revoke_reason})" if key.revoke_reason else ""
        raise SignatureError(Reason.REVOKED_KEY, f"{what} is signed by {key.name} ({key.key_id}), revoked on "
                             f"{key.revoked}{why}", key=key)
    if key.expired(now):
        raise SignatureError(Reason.EXPIRED, f"{what} is signed by {key.name} ({key.key_id}), whose trust "
                             f"expired on {key.expires}", key=key)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    message = _message(purpose, payload)
    try:
        Ed25519PublicKey.from_public_bytes(key.public_key).verify(ref.value, message)
    except InvalidSignature:
        raise SignatureError(Reason.BAD_SIGNATURE, f"{what} does not match its signature by {key.name} "
                             f"({key.key_id})", key=key) from None
    return Verified(key, hashlib.sha256(message).hexdigest())


# ---- catalogs ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CatalogTrust:
    """What a catalog's signatures showed: who signed the whole document (None: unsigned) and how many entries
    carried their own valid signature."""

    signer: KeyInfo | None
    signed_entries: int


def _without_signature(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k != "signature"}


def sign_catalog(document: Mapping[str, Any], signer: Signer, *, entries: bool = True) -> dict[str, Any]:
    """A copy of an our-format catalog with each entry signed (so an entry keeps its signature when copied into
    another catalog) and the whole document signed over its entries and their signatures."""
    signed = dict(document)
    if entries:
        signed["custom_nodes"] = [
            {**_without_signature(e), "signature": sign(signer, "catalog-entry", _without_signature(e))}
            for e in document.get("custom_nodes", [])]
    signed["signature"] = sign(signer, "catalog", _without_signature(signed))
    return signed


def verify_catalog(document: Mapping[str, Any], keyring: Keyring, *, require: bool = False,
                   channel: str = "catalog", now: datetime | None = None) -> CatalogTrust:
    """Check the document's and the entries' signatures where present; with `require`, an unsigned document
    is refused. ComfyUI-Manager's lists carry none, so they pass only when signatures are not required."""
    signer = None
    if document.get("signature") not in (None, ""):
        signer = verify(keyring, "catalog", _without_signature(document), document["signature"],
                        what=f"catalog {channel}", now=now).key
    elif require:
        raise SignatureError(Reason.UNSIGNED, f"catalog {channel} is not signed, and signatures are required")
    count = 0
    for raw in document.get("custom_nodes", []) or []:
        if isinstance(raw, Mapping) and raw.get("signature") not in (None, ""):
            label = raw.get("id") or raw.get("title") or "?"
            verify(keyring, "catalog-entry", _without_signature(raw), raw["signature"],
                   what=f"entry {label!r} of catalog {channel}", now=now)
            count += 1
    return CatalogTrust(signer, count)


def signatures_required(home: Home, channel: str) -> bool:
    """`[manager] require_signed_catalogs = true`, or `require_signature = true` on the channel's own entry."""
    conf = Settings.load(home).raw.get("manager", {})
    if conf.get("require_signed_catalogs", False):
        return True
    for item in conf.get("channels", []) or []:
        if isinstance(item, Mapping) and item.get("name") == channel and item.get("require_signature"):
            return True
    return False


def check_channel(home: Home, channel: str, document: Mapping[str, Any]) -> CatalogTrust:
    """The catalog module's hook: verify one fetched or cached channel against the home's keyring."""
    return verify_catalog(document, Keyring(home), require=signatures_required(home, channel), channel=channel)


# ---- packs -------------------------------------------------------------------------------------------------

def pack_manifest(pack: Path) -> dict[str, Any]:
    """Every file of a pack folder with its sha256 (and links with their targets), as a signable JSON value.
    `.git`, `__pycache__`, `*.pyc` and the signature file itself are left out."""
    files: dict[str, str] = {}
    for folder, dirs, names in os.walk(pack):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in names:
            full = Path(folder, name)
            relative = full.relative_to(pack).as_posix()
            if name.endswith(".pyc") or relative == PACK_SIGNATURE_FILE:
                continue
            if full.is_symlink():
                files[relative] = "link:" + os.readlink(full)
            else:
                files[relative] = "sha256:" + _file_sha256(full)
    return {"format": PACK_FORMAT, "name": pack.name, "files": dict(sorted(files.items()))}


def sign_pack(pack: Path, signer: Signer) -> Path:
    """Write `<pack>/partyflow-signature.json`: the manifest of the pack's files and its signature."""
    manifest = pack_manifest(pack)
    path = pack / PACK_SIGNATURE_FILE
    data = {"manifest": manifest, "signature": sign(signer, "pack", manifest),
            "signed_at": datetime.now(UTC).isoformat(timespec="seconds")}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def verify_pack(pack: Path, keyring: Keyring, *, now: datetime | None = None) -> Verified:
    """Check a pack folder against its signed manifest: the signature first, then every file's hash, naming the
    first file that was changed, added or removed."""
    sig_file = pack / PACK_SIGNATURE_FILE
    if not sig_file.is_file():
        raise SignatureError(Reason.UNSIGNED, f"pack {pack.name} has no {PACK_SIGNATURE_FILE}")
    try:
        data = json.loads(sig_file.read_text(encoding="utf-8"))
        manifest, signature = data["manifest"], data["signature"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise SignatureError(Reason.MALFORMED, f"{sig_file}: cannot be read ({exc})") from None
    verified = verify(keyring, "pack", manifest, signature, what=f"pack {pack.name}", now=now)
    signed = manifest.get("files", {}) if isinstance(manifest, Mapping) else {}
    actual = pack_manifest(pack)["files"]
    for relative in sorted(set(signed) | set(actual)):
        if relative not in actual:
            problem = "is missing"
        elif relative not in signed:
            problem = "was added after signing"
        elif signed[relative] != actual[relative]:
            problem = "changed after signing"
        else:
            continue
        raise SignatureError(Reason.HASH_MISMATCH, f"pack {pack.name}: {relative} {problem}", key=verified.key,
                             path=relative)
    return verified


_BROKEN = frozenset({Reason.BAD_SIGNATURE, Reason.HASH_MISMATCH, Reason.MALFORMED, Reason.REVOKED_KEY})


def pack_signature_status(pack: Path, home: Home) -> SignatureStatus:
    """A staged pack's own signature as the security policy judges it (`security.policy.enforce_staged`).

    The manager computes it because keys and signature checking are the manager's; the policy only decides. A
    broken signature (bad signature, changed file, malformed, revoked key) is evidence of tampering: "invalid",
    refused at every level. A missing signature or one by a key nobody trusts (unknown, expired) is "unsigned":
    refused only where signatures are required. A single-file pack has no folder to carry a signature.
    """
    from partyflow.security.policy import SignatureStatus  # loads the scanner: only when a pack is gated

    if not pack.is_dir():
        return SignatureStatus("unsigned", reason="single-file packs carry no signature")
    try:
        verified = verify_pack(pack, Keyring(home))
    except SignatureError as exc:
        return SignatureStatus("invalid" if exc.reason in _BROKEN else "unsigned", signer=exc.key_id,
                               reason=exc.message)
    key = verified.key
    return SignatureStatus("signed", signer=f"{key.name} ({key.key_id})")


# ---- snapshots (environment promotions) --------------------------------------------------------------------

def sign_snapshot(document: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    """A copy of a snapshot document with its `signature` over everything else, so promoting it into another
    environment can prove who approved exactly this set of packs."""
    body = _without_signature(document)
    return {**body, "signature": sign(signer, "snapshot", body)}


def verify_snapshot(document: Mapping[str, Any], keyring: Keyring, *, allowed: Any = (),
                    what: str = "the snapshot", now: datetime | None = None) -> Verified:
    """Check a snapshot's signature against the keyring; `allowed` (key ids), when not empty, narrows which
    trusted keys may sign it (an environment's `trusted_keys`)."""
    verified = verify(keyring, "snapshot", _without_signature(document), document.get("signature"), what=what,
                      now=now)
    if allowed and verified.key.key_id not in allowed:
        raise SignatureError(Reason.UNKNOWN_KEY, f"{what} is signed by {verified.key.name} ({verified.key.key_id}), "
                             "which is not among this environment's trusted_keys", key=verified.key)
    return verified


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
