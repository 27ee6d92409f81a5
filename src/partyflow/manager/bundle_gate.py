"""The security policy applied to a whole bundle before the bundle changes anything.

A pack inside a bundle arrives as an archive, but its provenance is the bundle's: when a trusted key signed the
manifest and every member's hash matched, each pack carries that signer's word, as the entries of a signed catalog
do; an unsigned bundle's packs are plain archives. Checking only pack by pack, inside `PackManager.install`, would
stop a refused bundle half way: its wheels already installed, some packs in place. So every pack is scanned and
every rule of the level is asked here, first; the per-pack installs then ask again with the same provenance.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from partyflow.config import Home
from partyflow.manager.signing import pack_signature_status
from partyflow.manager.sources import SourceSpec, fetch
from partyflow.security.policy import Caller, Origin, SecurityPolicy, SignatureStatus, enforce_staged

if TYPE_CHECKING:
    from partyflow.manager.bundles import OpenedBundle

__all__ = ["BundleTrust", "bundle_trust", "check_bundle"]


@dataclass(frozen=True)
class BundleTrust:
    """How the policy sees the packs of one verified bundle."""

    origin: Origin
    signature: SignatureStatus


def bundle_trust(opened: OpenedBundle) -> BundleTrust:
    """Signed by a trusted key: catalog-grade, signed packs. Unsigned (`--allow-unsigned`): unsigned archives."""
    if opened.signer is not None:
        signer = f"{opened.signer.name} ({opened.signer.key_id})"
        return BundleTrust(Origin.CATALOG, SignatureStatus("signed", signer=signer,
                                                           reason=f"in a bundle signed by {signer}"))
    return BundleTrust(Origin.ARCHIVE, SignatureStatus("unsigned", reason=f"bundle {opened.path.name} is unsigned"))


def check_bundle(opened: OpenedBundle, work: Path, *, home: Home, policy: SecurityPolicy, caller: Caller,
                 force: bool = False) -> dict[str, dict[str, Any]]:
    """Ask the policy about the bundle's signature and source, then scan every pack extracted under `work`
    (verify_bundle's `extract_to`). Returns each pack's audit details; raises PolicyRefusal naming the pack."""
    trust = bundle_trust(opened)
    details: dict[str, Any] = {"security_level": policy.level.value, "caller": caller.label,
                               "origin": trust.origin.value, "signature": trust.signature.to_dict()}
    label = f"bundle {opened.path.name}"
    policy.require(policy.signature(trust.signature, caller), pack=label, details=details)
    policy.require(policy.source(trust.origin, caller), pack=label, details=details)
    results: dict[str, dict[str, Any]] = {}
    for item in opened.manifest.packs:
        member = work.joinpath(*item.member.split("/"))
        with tempfile.TemporaryDirectory(dir=work, prefix=".scan-") as scratch:
            if member.suffix == ".py":
                staged = member
            else:  # unpacked with the manager's archive rules (no escaping paths, size limits), only to scan
                spec = SourceSpec(kind="archive", location=str(member), name=item.name)
                staged = fetch(spec, Path(scratch)).path
            results[item.name] = enforce_staged(policy, staged, home=home, caller=caller, origin=trust.origin,
                                                pack_signature=pack_signature_status(staged, home), force=force,
                                                name=item.name, signature=trust.signature)
    return results
