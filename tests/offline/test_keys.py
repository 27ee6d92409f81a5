"""Keys and signatures: the keyring on disk, the CLI, and each reason a verification fails."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.manager.keys import Keyring, KeyringError
from partyflow.manager.signing import Reason, SignatureError, sign, sign_pack, verify, verify_pack

from .conftest import cli, cli_json, make_pack


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home").ensure()


def test_keys_cli_generate_list_export_trust_revoke(home: Home, tmp_path: Path) -> None:
    made = cli_json("keys", "generate", "alice", "--expires", "2999-01-01", home=home)
    key_file = home.root / "keys" / "private" / f"{made['key_id']}.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((home.root / "keys").stat().st_mode) == 0o700
    assert made["export"].startswith("partyflow-ed25519 ") and made["export"].endswith("expires=2999-01-01")

    other = Home(tmp_path / "other").ensure()
    exported = tmp_path / "alice.pub"
    assert cli("keys", "export", "alice", "-o", str(exported), home=home).returncode == 0
    trusted = cli_json("keys", "trust", str(exported), home=other)
    assert (trusted["name"], trusted["key_id"], trusted["private"]) == ("alice", made["key_id"], False)
    assert trusted["expires"] == "2999-01-01"

    listed = cli_json("keys", "list", home=other)
    assert [(k["name"], k["status"]) for k in listed] == [("alice", "trusted")]
    revoked = cli_json("keys", "revoke", made["key_id"][:8], "--reason", "laptop stolen", home=other)
    assert revoked["status"] == "revoked" and revoked["revoke_reason"] == "laptop stolen"
    again = cli("keys", "trust", str(exported), home=other)  # a revoked key is not re-trusted by accident
    assert again.returncode == 2 and "revoked" in again.stderr
    assert cli_json("keys", "trust", str(exported), "--force", home=other)["status"] == "trusted"

    bad = cli("keys", "trust", "partyflow-ed25519 bm90LWEta2V5 mallory", home=other)
    assert bad.returncode == 2 and "32 bytes" in bad.stderr
    assert cli("keys", "generate", "alice", home=home).returncode == 2  # names are unique


def test_each_verification_failure_has_its_reason(home: Home, tmp_path: Path) -> None:
    ring = Keyring(home)
    ring.generate("alice")
    signer = ring.signer()
    payload = {"files": {"a": "sha256:00"}, "sequence": 1}
    good = sign(signer, "bundle", payload)
    assert verify(ring, "bundle", payload, good).key.name == "alice"

    def reason(ring_: Keyring, *args: object, **kw: object) -> Reason:
        with pytest.raises(SignatureError) as caught:
            verify(ring_, *args, **kw)  # type: ignore[arg-type]
        return caught.value.reason

    assert reason(ring, "bundle", {**payload, "sequence": 2}, good) is Reason.BAD_SIGNATURE
    assert reason(ring, "catalog", payload, good) is Reason.BAD_SIGNATURE  # purposes do not mix
    assert reason(ring, "bundle", payload, None) is Reason.UNSIGNED
    assert reason(ring, "bundle", payload, "ed25519:zz") is Reason.MALFORMED
    stranger = Keyring(tmp_path / "stranger")
    assert reason(stranger, "bundle", payload, good) is Reason.UNKNOWN_KEY

    expiring = Keyring(tmp_path / "expiring")
    expiring.trust(ring.export("alice"), expires="2030-01-01")
    assert verify(expiring, "bundle", payload, good, now=datetime(2029, 12, 31, tzinfo=UTC))
    assert reason(expiring, "bundle", payload, good, now=datetime(2030, 1, 2, tzinfo=UTC)) is Reason.EXPIRED

    ring.revoke("alice", reason="rotated")
    assert reason(ring, "bundle", payload, good) is Reason.REVOKED_KEY
    with pytest.raises(KeyringError, match="revoked"):
        ring.signer("alice")
    ring.generate("past", expires=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    with pytest.raises(KeyringError, match="expired"):
        ring.signer("past")


def test_signed_pack_names_the_changed_file(home: Home, tmp_path: Path) -> None:
    ring = Keyring(home)
    ring.generate("alice")
    pack = make_pack(tmp_path, "signed")
    (pack / "data.txt").write_text("hello\n")
    done = cli("keys", "sign", str(pack), home=home)
    assert done.returncode == 0, done.stderr
    assert verify_pack(pack, ring).key.name == "alice"
    assert cli_json("keys", "verify", str(pack), home=home)["key"] == "alice"

    (pack / "data.txt").write_text("hellO\n")
    with pytest.raises(SignatureError) as caught:
        verify_pack(pack, ring)
    assert caught.value.reason is Reason.HASH_MISMATCH and caught.value.path == "data.txt"
    failed = cli_json("keys", "verify", str(pack), home=home, code=2)
    assert failed["reason"] == "hash mismatch" and "data.txt changed" in failed["error"]

    (pack / "data.txt").write_text("hello\n")
    (pack / "extra.py").write_text("import os\n")
    with pytest.raises(SignatureError, match="extra.py was added"):
        verify_pack(pack, ring)
    (pack / "extra.py").unlink()
    sign_pack(pack, ring.signer())  # re-signing covers the new state
    assert verify_pack(pack, ring)
