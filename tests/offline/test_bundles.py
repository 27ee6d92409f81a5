"""Bundles end to end: create on a connected home, verify and install on another with its own venv."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.manager.audit import AuditLog
from partyflow.manager.bundles import (
    BundleError,
    Manifest,
    Target,
    WheelItem,
    check_target,
    create_bundle,
    install_bundle,
    installed_bundles,
    verify_bundle,
)
from partyflow.manager.dependencies import installed_packages
from partyflow.manager.keys import Keyring
from partyflow.manager.packs import PackManager
from partyflow.manager.staging import PAUSE_ENV, PAUSE_MARKER

from .conftest import ROOT, cli, cli_json, make_pack, make_wheel

Maker = Callable[..., Path]


def packs_of(home: Home) -> set[str]:
    return {p.name for p in PackManager(home).installed()}


def test_cli_create_inspect_verify_install_twice(maker: Home, target: Home, sources: Path, venv: str,
                                                 tmp_path: Path) -> None:
    out = tmp_path / "x.pfb"
    made = cli_json("bundle", "create", "--packs", f"{sources / 'one'},{sources / 'two'}", "--python", "3.11",
                    "-o", str(out), home=maker)
    assert made["sequence"] == 1 and made["signer"]["name"] == "release"
    assert sorted(made["wheels"]) == ["alpha==1.0", "beta==1.0"]
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
    assert names == {"manifest.json", "manifest.sig", "packs/one.zip", "packs/two.zip",
                     "wheelhouse/alpha-1.0-py3-none-any.whl", "wheelhouse/beta-1.0-py3-none-any.whl"}

    shown = cli_json("bundle", "inspect", str(out), home=target)
    assert shown["signer"]["trusted"] and [p["name"] for p in shown["packs"]] == ["one", "two"]
    assert cli_json("bundle", "verify", str(out), home=target)["digest"] == made["digest"]
    plan = cli_json("bundle", "install", str(out), "--dry-run", home=target)
    assert [p["action"] for p in plan["packs"]] == ["install", "install"] and not packs_of(target)

    first = cli_json("bundle", "install", str(out), home=target)
    assert first["changed"] and {p["name"] for p in first["packs"]} == {"one", "two"}
    assert packs_of(target) == {"one", "two"}
    assert {k: installed_packages(venv).get(k) for k in ("alpha", "beta")} == {"alpha": "1.0", "beta": "1.0"}
    record = PackManager(target).info("one").record
    assert record is not None and record.source.kind == "archive" and record.archive_sha256

    again = cli_json("bundle", "install", str(out), home=target)
    assert again["changed"] is False and all(p["action"] == "unchanged" for p in again["packs"])
    state = installed_bundles(target)
    assert state["bundles"][made["digest"]]["status"] == "installed"
    with AuditLog(target) as log:
        actions = [(e.action, e.pack, e.result) for e in log.entries()]
    assert ("install", "one", "ok") in actions and ("bundle-install", None, "ok") in actions
    assert log_verified(target)


def log_verified(home: Home) -> bool:
    with AuditLog(home) as log:
        return log.verify().ok


def rewrite(bundle: Path, out: Path, change: Callable[[str, bytes], bytes | None],
            extra: dict[str, bytes] | None = None) -> Path:
    """Copy a bundle member by member; `change` returns new bytes (or None to drop the member)."""
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = change(info.filename, src.read(info))
            if data is not None:
                dst.writestr(info.filename, data)
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return out


def flip(data: bytes, at: int | None = None) -> bytes:
    where = len(data) // 2 if at is None else at
    return data[:where] + bytes([data[where] ^ 0x01]) + data[where + 1:]


def assert_untouched(target: Home, venv: str) -> None:
    assert not packs_of(target)
    assert "alpha" not in installed_packages(venv) and "beta" not in installed_packages(venv)


def test_tampered_bundles_are_refused_and_nothing_installed(make_bundle: Maker, target: Home, venv: str,
                                                            tmp_path: Path) -> None:
    good = make_bundle()
    with zipfile.ZipFile(good) as zf:
        members = zf.namelist()
    expected = {"manifest.json": ("bad signature", "corrupt"),
                "manifest.sig": ("bad signature", "malformed signature")}  # a flipped base64 character may not decode
    for member in members:  # one changed byte in any file
        bad = rewrite(good, tmp_path / "bad.pfb", lambda n, d, m=member: flip(d) if n == m else d)
        with pytest.raises(BundleError) as caught:
            install_bundle(bad, target)
        assert caught.value.reason in expected.get(member, ("hash mismatch",)), member
        if member.startswith(("packs/", "wheelhouse/")):
            assert member in caught.value.message
    bumped = rewrite(good, tmp_path / "bumped.pfb",  # a manifest that still parses: the signature catches it
                     lambda n, d: d.replace(b'"sequence": 1', b'"sequence": 7') if n == "manifest.json" else d)
    with pytest.raises(BundleError) as caught:
        install_bundle(bumped, target)
    assert caught.value.reason == "bad signature"
    assert_untouched(target, venv)

    raw = bytearray(good.read_bytes())  # a changed byte in the container itself (compressed data, CRC)
    raw[len(raw) // 3] ^= 0xFF
    (tmp_path / "raw.pfb").write_bytes(bytes(raw))
    with pytest.raises(BundleError) as caught:
        verify_bundle(tmp_path / "raw.pfb", target)
    assert caught.value.reason in ("hash mismatch", "corrupt", "bad signature")

    # a swapped wheel: another valid alpha 1.0, same file name
    other = make_wheel(tmp_path / "evil", "alpha", "1.0", ("gamma",)).read_bytes()
    swapped = rewrite(good, tmp_path / "swapped.pfb",
                      lambda n, d: other if n == "wheelhouse/alpha-1.0-py3-none-any.whl" else d)
    with pytest.raises(BundleError, match="alpha-1.0-py3-none-any.whl does not match") as caught:
        install_bundle(swapped, target)
    assert caught.value.reason == "hash mismatch"

    # ... and with the manifest's hash updated to match: the signature no longer does
    def fix_manifest(name: str, data: bytes) -> bytes:
        if name == "wheelhouse/alpha-1.0-py3-none-any.whl":
            return other
        if name == "manifest.json":
            import hashlib

            manifest = json.loads(data)
            manifest["files"]["wheelhouse/alpha-1.0-py3-none-any.whl"] = {
                "sha256": hashlib.sha256(other).hexdigest(), "size": len(other)}
            return json.dumps(manifest).encode()
        return data

    with pytest.raises(BundleError) as caught:
        install_bundle(rewrite(good, tmp_path / "resigned.pfb", fix_manifest), target)
    assert caught.value.reason == "bad signature"

    added = rewrite(good, tmp_path / "added.pfb", lambda n, d: d, {"wheelhouse/evil-1.0-py3-none-any.whl": b"x"})
    with pytest.raises(BundleError, match="not in its signed manifest"):
        install_bundle(added, target)
    assert_untouched(target, venv)
    with AuditLog(target) as log:
        refusals = [e for e in log.entries() if e.action == "bundle-install"]
    assert refusals and all(e.result == "refused" for e in refusals)


def test_replayed_older_manifest_is_refused(maker: Home, target: Home, sources: Path, tmp_path: Path) -> None:
    twin = Home(tmp_path / "twin").ensure()  # the same key on another machine, with its own counter
    shutil.copytree(maker.root / "keys", twin.root / "keys")
    shutil.copy(maker.config_file, twin.config_file)
    old = create_bundle(maker, tmp_path / "v1.pfb", packs=[str(sources / "two")])
    (sources / "two" / "extra.py").write_text("CHANGED = True\n")
    new = create_bundle(maker, tmp_path / "v2.pfb", packs=[str(sources / "two")])
    clash = create_bundle(twin, tmp_path / "clash.pfb", packs=[str(sources / "two")])
    assert (old.manifest.sequence, new.manifest.sequence, clash.manifest.sequence) == (1, 2, 1)

    assert install_bundle(old.path, target).changed
    upgraded = install_bundle(new.path, target)
    assert [(p.name, p.action) for p in upgraded.packs] == [("two", "replace")]
    assert (target.custom_nodes / "two" / "extra.py").is_file()
    for replay in (old.path, clash.path):
        with pytest.raises(BundleError, match="older than sequence 2") as caught:
            install_bundle(replay, target)
        assert caught.value.reason == "replay"
    assert (target.custom_nodes / "two" / "extra.py").is_file()

    fresh = Home(tmp_path / "fresh").ensure()
    shutil.copytree(target.root / "keys", fresh.root / "keys")
    shutil.copy(target.config_file, fresh.config_file)
    install_bundle(clash.path, fresh)
    with pytest.raises(BundleError, match="different bundle with sequence 1"):
        install_bundle(old.path, fresh)  # same signer, same number, other content


def test_unknown_revoked_and_missing_signers(maker: Home, make_bundle: Maker, target: Home, venv: str,
                                             tmp_path: Path) -> None:
    bundle = make_bundle("two")
    stranger = Home(tmp_path / "stranger").ensure()
    failed = cli_json("bundle", "install", str(bundle), home=stranger, code=2)
    assert failed["reason"] == "unknown key" and "partyflow keys trust" in failed["hint"]
    assert not packs_of(stranger)

    unsigned = create_bundle(maker, tmp_path / "unsigned.pfb", packs=[str(bundle.parent / "src" / "two")],
                             unsigned=True).path
    with pytest.raises(BundleError) as caught:
        install_bundle(unsigned, target)
    assert caught.value.reason == "unsigned"
    assert install_bundle(unsigned, target, allow_unsigned=True).changed  # an explicit choice
    PackManager(target).uninstall("two")

    # a signed bundle stripped of its signature still claims its signer: the claim must count for nothing
    stripped = rewrite(bundle, tmp_path / "stripped.pfb", lambda n, d: None if n == "manifest.sig" else
                       d.replace(b'"sequence": 1', b'"sequence": 999') if n == "manifest.json" else d)
    assert install_bundle(stripped, target, allow_unsigned=True).signer is None
    assert installed_bundles(target)["signers"] == {}
    PackManager(target).uninstall("two")
    assert install_bundle(bundle, target).signer  # the real signer is not locked out as a "replay"
    PackManager(target).uninstall("two")

    Keyring(target).revoke("release", reason="compromised")
    with pytest.raises(BundleError, match="compromised") as caught:
        install_bundle(bundle, target)
    assert caught.value.reason == "revoked key" and not packs_of(target)


def test_bundle_for_another_platform_or_python(make_bundle: Maker, target: Home, venv: str) -> None:
    windows = make_bundle(out="win.pfb", platforms=["win_amd64"])
    failed = cli_json("bundle", "install", str(windows), home=target, code=2)
    assert failed["reason"] == "wrong platform" and "win_amd64" in failed["error"]
    with pytest.raises(BundleError, match="made for Python 3.12") as caught:
        install_bundle(make_bundle(out="py312.pfb", python="3.12"), target)
    assert caught.value.reason == "wrong python"
    assert_untouched(target, venv)

    here = {"python": "3.11", "platform": "linux", "machine": "x86_64", "implementation": "cpython"}
    manifest = Manifest("", 1, None, None, Target(("manylinux_2_17_x86_64",), "3.11"), (), (), {})
    for wheel, fits in (("numpy-2.0-cp311-cp311-manylinux_2_17_x86_64.whl", True),
                        ("numpy-2.0-cp312-cp312-manylinux_2_17_x86_64.whl", False),
                        ("numpy-2.0-cp311-cp311-manylinux_2_17_aarch64.whl", False),
                        ("numpy-2.0-cp311-cp311-macosx_11_0_arm64.whl", False),
                        ("x-1.0-cp38-abi3-manylinux2014_x86_64.whl", True),
                        ("x-1.0-py2.py3-none-any.whl", True)):
        item = WheelItem(f"wheelhouse/{wheel}", "x", "1")
        m = Manifest(**{**manifest.__dict__, "wheels": (item,), "files": {item.member: ("0" * 64, 1)}})
        if fits:
            check_target(m, here)
        else:
            with pytest.raises(BundleError, match="does not run on"):
                check_target(m, here)


def test_interrupted_install_continues(make_bundle: Maker, target: Home, venv: str) -> None:
    bundle = make_bundle("one", "two")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PARTYFLOW_HOME"}
    env[PAUSE_ENV] = "bundle-pack-one"  # stop right after the first pack, then kill
    child = subprocess.Popen([sys.executable, "-m", "partyflow", "bundle", "install", str(bundle), "--yes",
                              "--json", "--home", str(target.root)], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stderr is not None
    for line in child.stderr:
        if line.startswith(PAUSE_MARKER):
            break
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert packs_of(target) == {"one"}
    digest = next(iter(installed_bundles(target)["bundles"]))
    assert installed_bundles(target)["bundles"][digest]["status"] == "installing"

    resumed = install_bundle(bundle, target)
    assert [(p.name, p.action) for p in resumed.packs] == [("one", "unchanged"), ("two", "install")]
    assert packs_of(target) == {"one", "two"}
    assert installed_bundles(target)["bundles"][digest]["status"] == "installed"


def test_bundle_from_a_snapshot_keeps_its_pins(maker: Home, target: Home, venv: str, tmp_path: Path) -> None:
    four = make_pack(tmp_path / "src4", "four", ("alpha",))  # unpinned: the index's newest would be 2.0
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps({"format": "partyflow-snapshot/1", "packs": [
        {"name": "four", "source": {"kind": "dir", "location": str(four)}}], "python": {"alpha": "1.0"}}))
    done = cli("bundle", "create", "--snapshot", str(snap), "-o", str(tmp_path / "s.pfb"), home=maker)
    assert done.returncode == 0, done.stderr
    result = install_bundle(tmp_path / "s.pfb", target)
    assert result.python_installed == {"alpha": "1.0"} and packs_of(target) == {"four"}
