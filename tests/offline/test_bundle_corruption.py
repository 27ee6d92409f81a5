"""Single-byte flips anywhere in a bundle file (issue 10, part 2): zipfile then raises zlib.error, EOFError,
NotImplementedError or RuntimeError besides BadZipFile, which once escaped as a traceback (or click's bare
"Aborted!") with no audit record. Every flip is now a clear refusal, exit code 2, recorded in the audit log."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from partyflow.config import Home
from partyflow.manager.audit import AuditLog
from partyflow.manager.bundles import BundleError, verify_bundle

from .conftest import cli, cli_json

Maker = Callable[..., Path]


def _zip_failure(data: bytes, scratch: Path) -> type[BaseException] | None:
    """What plain zipfile raises reading every member of `data` (None: it reads)."""
    scratch.write_bytes(data)
    try:
        with zipfile.ZipFile(scratch) as zf:
            for info in zf.infolist():
                zf.read(info)
    except Exception as exc:  # noqa: BLE001 - classifying whatever zipfile raises is the point
        return type(exc)
    return None


def _flipped(data: bytes, at: int, mask: int) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1:]


def test_every_single_byte_flip_is_a_refusal_or_harmless(make_bundle: Maker, target: Home, tmp_path: Path) -> None:
    good = make_bundle("two")
    data = good.read_bytes()
    bad, scratch = tmp_path / "bad.pfb", tmp_path / "scratch.zip"
    raised: set[type[BaseException]] = set()
    refused = harmless = 0
    for at in range(len(data)):
        for mask in (0x01, 0x80):
            changed = _flipped(data, at, mask)
            failure = _zip_failure(changed, scratch)
            if failure is not None:
                raised.add(failure)
            bad.write_bytes(changed)
            try:
                verify_bundle(bad, target)
                harmless += 1  # a byte zip readers ignore (a timestamp, a comment): every member still matches
            except BundleError:
                refused += 1
    # the flips reach the failures that once escaped, and each is a refusal now
    assert {zlib.error, EOFError} <= raised, raised
    assert refused > 0.7 * 2 * len(data) and refused + harmless == 2 * len(data)


def test_cli_refuses_a_corrupt_bundle_with_exit_2_and_an_audit_record(make_bundle: Maker, target: Home,
                                                                      tmp_path: Path) -> None:
    good = make_bundle("two")
    data = good.read_bytes()
    scratch = tmp_path / "scratch.zip"
    picked: dict[type[BaseException], bytes] = {}
    for at in range(len(data)):
        for mask in (0x01, 0x80):
            changed = _flipped(data, at, mask)
            failure = _zip_failure(changed, scratch)
            if failure in (zlib.error, EOFError) and failure not in picked:
                picked[failure] = changed
    assert set(picked) == {zlib.error, EOFError}
    for kind, changed in picked.items():
        bad = tmp_path / f"{kind.__name__}.pfb"
        bad.write_bytes(changed)
        for command in (("bundle", "verify", str(bad)), ("bundle", "install", str(bad), "--yes")):
            done = cli(*command, home=target)
            assert done.returncode == 2, (kind, command, done.stdout, done.stderr)
            assert "error:" in done.stderr and "Traceback" not in done.stderr and "Aborted" not in done.stderr
    answer = cli_json("bundle", "verify", str(bad), home=target, code=2)
    assert answer["ok"] is False and answer["reason"] in ("corrupt", "hash mismatch", "bad signature")
    with AuditLog(target) as log:
        entries = log.entries()
        assert log.verify().ok
    for action in ("bundle-verify", "bundle-install"):
        mine = [e for e in entries if e.action == action]
        assert len(mine) == (3 if action == "bundle-verify" else 2), action
        assert all(e.result == "refused" and e.error for e in mine), action
