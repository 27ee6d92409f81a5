"""Pack lifecycle through the Python API: round trips, provenance, refusals that leave nothing behind, install.py."""

from __future__ import annotations

import json
import shutil
import types
import zipfile
from pathlib import Path
from typing import Any

import pytest
from tests.manager.helpers import GitRemote, assert_settled, audit_entries, pack_version, write_pack

from partyflow.config import Home
from partyflow.manager import packs as packs_module
from partyflow.manager.errors import ManagerError, UnknownPackError
from partyflow.manager.packs import PackManager
from partyflow.manager.provenance import tree_hash
from partyflow.security.levels import MANAGER_LEVEL_ENV as LEVEL_ENV


def installed_names(manager: PackManager) -> dict[str, bool]:
    return {p.name: p.enabled for p in manager.installed()}


def test_folder_round_trip_with_provenance_and_audit(manager: PackManager, home: Home, sources: Path) -> None:
    src = write_pack(sources / "roundtrip", "1")
    result = manager.install(str(src))
    assert result.changed and result.node_types == ("Hello",)
    target = home.custom_nodes / "roundtrip"
    assert pack_version(target) == "1"
    record = manager.info("roundtrip").record
    assert record is not None and record.source.kind == "dir" and record.content_hash == tree_hash(target)
    records_file = json.loads((home.root / "manager" / "packs.json").read_text())
    assert records_file["packs"]["roundtrip"]["content_hash"] == record.content_hash

    manager.disable("roundtrip")
    assert not target.exists() and (home.disabled_nodes / "roundtrip").is_dir()
    assert installed_names(manager) == {"roundtrip": False}
    assert manager.disable("roundtrip").changed is False
    manager.enable("roundtrip")
    assert installed_names(manager) == {"roundtrip": True}

    write_pack(src, "2")
    updated = manager.update("roundtrip")
    assert updated.changed and pack_version(target) == "2"
    assert manager.info("roundtrip").record.content_hash == tree_hash(target)
    assert manager.update("roundtrip").changed is False

    manager.uninstall("roundtrip")
    assert manager.installed() == [] and "roundtrip" not in json.loads(
        (home.root / "manager" / "packs.json").read_text())["packs"]
    assert_settled(home)
    assert [(e.action, e.result) for e in audit_entries(home)] == [
        ("install", "ok"), ("disable", "ok"), ("disable", "unchanged"), ("enable", "ok"), ("update", "ok"),
        ("update", "unchanged"), ("uninstall", "ok")]
    first = audit_entries(home)[0]
    assert first.pack == "roundtrip" and first.content_hash == record.content_hash and first.source == str(src)


def test_single_file_and_archive_packs(manager: PackManager, home: Home, sources: Path) -> None:
    single = sources / "onefile.py"
    single.write_text("class N:\n    pass\nNODE_CLASS_MAPPINGS = {'N': N}\n")
    manager.install(str(single))
    assert (home.custom_nodes / "onefile.py").is_file()
    manager.disable("onefile")
    assert (home.disabled_nodes / "onefile.py").is_file()
    manager.enable("onefile")

    archive = sources / "zipped-main.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped-main/__init__.py", "class Z:\n    pass\nNODE_CLASS_MAPPINGS = {'Z': Z}\n")
    result = manager.install(f"{archive}@1.0", name="zipped")
    assert result.record.version == "1.0" and result.record.archive_sha256
    assert (home.custom_nodes / "zipped" / "__init__.py").is_file()
    assert set(installed_names(manager)) == {"onefile", "zipped"}
    assert_settled(home)


def test_git_install_update_and_pin(manager: PackManager, home: Home, git_remote: GitRemote) -> None:
    manager.install(str(git_remote.bare))
    target = home.custom_nodes / "remotepack"
    record = manager.info("remotepack").record
    assert pack_version(target) == "2" and record.commit == git_remote.commits["2"]
    assert (record.version, record.ref_kind) == ("main", "branch")

    assert manager.update("remotepack").changed is False
    (target / "downloaded-model.bin").write_text("user data")  # a pack's own files survive an update
    new_commit = git_remote.commit_version("4")
    result = manager.update("remotepack")
    assert result.changed and pack_version(target) == "4"
    assert manager.info("remotepack").record.commit == new_commit
    assert (target / "downloaded-model.bin").read_text() == "user data"

    manager.update("remotepack", version="v1.0")
    pinned = manager.info("remotepack").record
    assert pack_version(target) == "1" and (pinned.version, pinned.ref_kind) == ("v1.0", "tag")
    git_remote.commit_version("5")
    stays = manager.update("remotepack")
    assert not stays.changed and "pinned" in stays.message and pack_version(target) == "1"
    assert [r.pack for r in manager.update_all()] == ["remotepack"]

    manager.disable("remotepack")
    manager.update("remotepack", version="dev")  # a disabled pack is updated where it is
    assert pack_version(home.disabled_nodes / "remotepack") == "3"
    assert not target.exists()
    assert_settled(home)


def test_install_at_tag_and_commit(manager: PackManager, home: Home, git_remote: GitRemote) -> None:
    manager.install(f"{git_remote.bare}@v1.0")
    assert pack_version(home.custom_nodes / "remotepack") == "1"
    manager.install(f"{git_remote.bare}@{git_remote.commits['3']}", name="at-commit")
    assert pack_version(home.custom_nodes / "at-commit") == "3"
    assert manager.info("at-commit").record.ref_kind == "commit"


BROKEN = {
    "no-init": ({"nodes.py": "X = 1\n"}, "has no __init__.py"),
    "no-mappings": ({"__init__.py": "X = 1\n"}, "exports no NODE_CLASS_MAPPINGS"),
    "import-error": ({"__init__.py": "import not_a_module_anywhere\n"}, "not_a_module_anywhere"),
    "exits": ({"__init__.py": "import sys\nsys.exit(3)\n"}, "SystemExit"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_pack_is_refused_leaving_nothing(manager: PackManager, home: Home, sources: Path,
                                                case: str) -> None:
    files, message = BROKEN[case]
    src = sources / case
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    with pytest.raises(ManagerError, match=message):
        manager.install(str(src))
    assert list(home.custom_nodes.iterdir()) == [home.disabled_nodes]
    assert not list(home.disabled_nodes.iterdir())
    assert_settled(home)
    (entry,) = audit_entries(home)
    assert (entry.action, entry.result, entry.pack) == ("install", "failed", case)
    assert message in entry.error


def test_failed_update_keeps_the_old_version(manager: PackManager, home: Home, sources: Path) -> None:
    src = write_pack(sources / "keeper", "1")
    manager.install(str(src))
    (src / "__init__.py").write_text("raise RuntimeError('broken release')\n")
    with pytest.raises(ManagerError, match="broken release"):
        manager.update("keeper")
    assert pack_version(home.custom_nodes / "keeper") == "1"
    assert manager.info("keeper").record.content_hash == tree_hash(home.custom_nodes / "keeper")
    assert audit_entries(home)[-1].result == "failed"
    assert_settled(home)


def test_user_errors(manager: PackManager, home: Home, sources: Path) -> None:
    manager.install(str(write_pack(sources / "impact-pack")))
    with pytest.raises(UnknownPackError) as unknown:
        manager.uninstall("impact-pak")
    assert unknown.value.user_error and unknown.value.suggestions == ("impact-pack",)
    with pytest.raises(ManagerError, match="already installed") as again:
        manager.install(str(sources / "impact-pack"))
    assert again.value.user_error
    with pytest.raises(ManagerError, match="no such file"):
        manager.install(str(sources / "missing-folder/"))
    (home.custom_nodes / "handmade").mkdir()
    with pytest.raises(ManagerError, match="not installed by partyflow"):
        manager.update("handmade")
    assert {p.name: p.record is None for p in manager.installed()} == {"handmade": True, "impact-pack": False}
    assert [e.result for e in audit_entries(home)] == ["ok", "refused", "refused", "refused", "refused"]


# --- install.py and dependencies -----------------------------------------------------------------------------

INSTALL_PY = "import pathlib\nprint('install.py ran here')\npathlib.Path('marker.txt').write_text('ok')\n"


def test_install_script_is_gated_by_the_security_level(home: Home, sources: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_pack(sources / "scripted", files={"install.py": INSTALL_PY})
    manager = PackManager(home)
    with pytest.raises(ManagerError, match="security level 'normal' does not allow") as refused:
        manager.install(str(src))
    assert refused.value.user_error and not (home.custom_nodes / "scripted").exists()

    home.root.joinpath("config.toml").write_text('[manager]\nsecurity_level = "strong"\n')
    with pytest.raises(ManagerError, match="'strong'"):
        manager.install(str(src))

    home.root.joinpath("config.toml").write_text('[manager]\nsecurity_level = "normal-"\n')
    result = manager.install(str(src))
    assert result.record.install_script == "ran"
    assert (home.custom_nodes / "scripted" / "marker.txt").read_text() == "ok"
    log = home.root / "manager" / "logs" / "scripted.install.log"
    assert "install.py ran here" in log.read_text()
    manager.uninstall("scripted")

    home.root.joinpath("config.toml").write_text("")
    skipped = manager.install(str(src), skip_install_script=True)
    assert skipped.record.install_script == "skipped" and not (home.custom_nodes / "scripted" / "marker.txt").exists()
    assert [e.result for e in audit_entries(home)] == ["refused", "refused", "ok", "ok", "ok"]


def test_failing_install_script_rolls_back(home: Home, sources: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LEVEL_ENV, "weak")
    src = write_pack(sources / "badscript", files={"install.py": "print('about to fail')\nraise SystemExit(4)\n"})
    with pytest.raises(ManagerError, match="install.py failed with exit code 4: about to fail"):
        PackManager(home).install(str(src))
    assert not (home.custom_nodes / "badscript").exists()
    assert_settled(home)


class FakeReport:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def to_dict(self) -> dict[str, Any]:
        return {"installed": {"fakepkg": "1.0"}}

    def rollback(self) -> None:
        self.log.append("rolled back")


def test_dependency_changes_are_undone_when_the_install_fails(home: Home, sources: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def install_for_pack(pack_dir: Path, *, home: Home, allow_conflicts: bool) -> FakeReport:
        calls.append(f"install {pack_dir.name} allow_conflicts={allow_conflicts}")
        return FakeReport(calls)

    fake = types.SimpleNamespace(install_for_pack=install_for_pack)
    monkeypatch.setattr(packs_module, "_dependency_module", lambda: fake)
    src = sources / "needsdeps"
    src.mkdir()
    (src / "requirements.txt").write_text("fakepkg==1.0\n")
    (src / "__init__.py").write_text("X = 1\n")  # no NODE_CLASS_MAPPINGS: fails after the dependency step
    with pytest.raises(ManagerError):
        PackManager(home).install(str(src), allow_conflicts=True)
    assert calls == ["install needsdeps allow_conflicts=True", "rolled back"]
    write_pack(src)
    result = PackManager(home).install(str(src))
    assert result.record.dependencies == {"installed": {"fakepkg": "1.0"}}


def test_requirements_refused_without_a_dependency_module(home: Home, sources: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packs_module, "_dependency_module", lambda: None)
    src = write_pack(sources / "wantsdeps", files={"requirements.txt": "# pinned\nrequests>=2\n"})
    with pytest.raises(ManagerError, match="dependency installation is not available"):
        PackManager(home).install(str(src))
    assert not (home.custom_nodes / "wantsdeps").exists()
    shutil.rmtree(src / "__pycache__", ignore_errors=True)
    (src / "requirements.txt").write_text("# nothing needed\n")
    PackManager(home).install(str(src))


def test_replace_swaps_in_one_step_and_keeps_the_old_pack_when_the_new_one_fails(
        manager: PackManager, home: Home, sources: Path) -> None:
    manager.install(str(write_pack(sources / "v1" / "swapped", "1")))
    broken = sources / "broken" / "swapped"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("NOTHING_HERE = True\n")  # no NODE_CLASS_MAPPINGS: verification fails
    with pytest.raises(ManagerError):
        manager.install(str(broken), replace=True)
    assert pack_version(home.custom_nodes / "swapped") == "1"  # the old pack was never taken away
    manager.install(str(write_pack(sources / "v2" / "swapped", "2")), replace=True)
    assert pack_version(home.custom_nodes / "swapped") == "2"
    assert_settled(home)
