"""Backup and restore: a faithful round trip, SQLite taken online, and every kind of damaged archive refused."""

from __future__ import annotations

import gzip
import io
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from partyflow.cli.main import app
from partyflow.config import Home
from partyflow.manager.audit import AuditLog
from partyflow.manager.backup import BackupError, create_backup, restore_backup, verify_backup

from .conftest import SECRET


def tree(root: Path, *tops: str) -> dict[str, bytes | str]:
    found: dict[str, bytes | str] = {}
    for top in tops:
        base = root / top
        if base.is_file():
            found[top] = base.read_bytes()
            continue
        for path in sorted(base.rglob("*")):
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            rel = path.relative_to(root).as_posix()
            found[rel] = "dir" if path.is_dir() else path.read_bytes()
    return found


def rewrite(archive: Path, out: Path, change) -> Path:
    """Copy `archive` member by member; `change(info, data)` returns (info, data) or None to drop the member."""
    with tarfile.open(archive, "r:gz") as src, tarfile.open(out, "w:gz") as dst:
        for info in src:
            data = src.extractfile(info).read() if info.isfile() else None
            changed = change(info, data)
            if changed is None:
                continue
            info, data = changed
            if data is not None:
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


TOPS = ("custom_nodes", "config.toml", "user", "manager/packs.json")


def test_round_trip_into_a_new_home(populated: Home, tmp_path: Path) -> None:
    summary = create_backup(populated, tmp_path / "b.tar.gz")
    assert summary.database and summary.files > 5
    target = Home(tmp_path / "restored")
    result = restore_backup(summary.path, target)
    assert not result.replaced and result.files == summary.files
    assert tree(target.root, *TOPS) == tree(populated.root, *TOPS)
    assert (target.disabled_nodes / "beta" / "__init__.py").is_file()
    assert (target.config_file.stat().st_mode & 0o777) == 0o600 and SECRET in target.config_file.read_text()
    assert not (target.models / "llm" / "big.gguf").exists()  # models are not backed up
    with AuditLog(target) as log:
        assert log.verify().ok and log.verify().records == 3


def test_restore_over_a_home_keeps_its_models_and_replaces_the_rest(populated: Home, tmp_path: Path) -> None:
    archive = create_backup(populated, tmp_path / "b.tar.gz").path
    (populated.custom_nodes / "alpha" / "__init__.py").write_text("broken", encoding="utf-8")
    (populated.custom_nodes / "newer").mkdir()
    (populated.models / "llm" / "big.gguf").write_bytes(b"newer weights")
    (populated.root / "keys" / "private").mkdir(parents=True)
    (populated.root / "keys" / "private" / "mine.pem").write_text("this machine's signing key")
    result = restore_backup(archive, populated)
    assert result.replaced
    assert (populated.root / "keys" / "private" / "mine.pem").read_text() == "this machine's signing key"
    assert "NODE_CLASS_MAPPINGS" in (populated.custom_nodes / "alpha" / "__init__.py").read_text()
    assert not (populated.custom_nodes / "newer").exists()
    assert (populated.models / "llm" / "big.gguf").read_bytes() == b"newer weights"
    assert not [p for p in populated.root.parent.iterdir() if p.name.startswith(".home.")]  # no leftovers


def test_database_is_copied_online_with_uncheckpointed_wal(populated: Home, tmp_path: Path) -> None:
    """Rows that live only in the WAL are in the backup: a copy of the database file alone would lose them."""
    writer = sqlite3.connect(populated.state_db)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    writer.executemany("INSERT INTO notes (text) VALUES (?)", [(f"n{i}",) for i in range(200)])
    writer.commit()
    assert Path(str(populated.state_db) + "-wal").stat().st_size > 0
    try:
        archive = create_backup(populated, tmp_path / "b.tar.gz").path
    finally:
        writer.close()
    target = Home(tmp_path / "restored")
    restore_backup(archive, target)
    with sqlite3.connect(target.state_db) as conn:
        assert conn.execute("SELECT count(*) FROM notes").fetchone() == (200,)


def test_backup_while_another_process_writes(populated: Home, tmp_path: Path) -> None:
    script = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
        "conn.execute('PRAGMA journal_mode=WAL')\n"
        "conn.execute('CREATE TABLE IF NOT EXISTS ticks (id INTEGER PRIMARY KEY, pad TEXT)')\n"
        "for i in range(10**6):\n"
        "    conn.execute('BEGIN IMMEDIATE'); conn.execute('INSERT INTO ticks (pad) VALUES (?)', ('x' * 500,));"
        " conn.execute('COMMIT')\n"
        "    if i == 500: print('ready', flush=True)\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(populated.state_db)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        archive = create_backup(populated, tmp_path / "b.tar.gz").path
        assert writer.poll() is None  # it kept writing during the backup
    finally:
        writer.kill()
        writer.wait()
    target = Home(tmp_path / "restored")
    restore_backup(archive, target)
    with sqlite3.connect(target.state_db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM ticks").fetchone()[0] > 500


@pytest.fixture
def archive(populated: Home, tmp_path: Path) -> Path:
    return create_backup(populated, tmp_path / "good.tar.gz").path


def refused(archive: Path, home: Home, match: str) -> None:
    before = tree(home.root, *TOPS)
    with pytest.raises(BackupError, match=match) as caught:
        restore_backup(archive, home)
    assert caught.value.user_error and "nothing was restored" in str(caught.value)
    assert tree(home.root, *TOPS) == before
    assert not [p for p in home.root.parent.iterdir() if p.name.startswith(".home.")]


def test_a_changed_byte_is_refused_naming_the_file(archive: Path, populated: Home, tmp_path: Path) -> None:
    def flip(info: tarfile.TarInfo, data: bytes | None):
        if info.name == "home/custom_nodes/alpha/__init__.py":
            data = data.replace(b"hi", b"ho")
        return info, data

    refused(rewrite(archive, tmp_path / "bad.tar.gz", flip), populated, r"custom_nodes/alpha/__init__.py does not "
            r"match its sha256")


def test_a_missing_or_extra_file_is_refused(archive: Path, populated: Home, tmp_path: Path) -> None:
    dropped = rewrite(archive, tmp_path / "dropped.tar.gz",
                      lambda i, d: None if i.name == "home/user/default/workflows/flow.json" else (i, d))
    refused(dropped, populated, "flow.json is listed in the manifest but missing")

    def add(info: tarfile.TarInfo, data: bytes | None):
        if info.name == "home/config.toml":
            extra = tarfile.TarInfo("home/custom_nodes/alpha/evil.py")
            extra.size = 0
            return extra, b"import os\n"
        return info, data

    refused(rewrite(archive, tmp_path / "extra.tar.gz", add), populated, "not in the manifest")


def test_a_truncated_archive_is_refused(archive: Path, populated: Home, tmp_path: Path) -> None:
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    refused(cut, populated, "truncated or corrupt")
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(gzip.compress(b"not a tar at all" * 100))
    refused(garbage, populated, "truncated or corrupt|no MANIFEST")


def test_unsafe_paths_and_links_are_refused(archive: Path, populated: Home, tmp_path: Path) -> None:
    def escape(info: tarfile.TarInfo, data: bytes | None):
        if info.name == "home/config.toml":
            info.name = "home/../../outside.txt"
        return info, data

    refused(rewrite(archive, tmp_path / "escape.tar.gz", escape), populated, "unsafe path")

    def link(info: tarfile.TarInfo, data: bytes | None):
        if info.name == "home/config.toml":
            evil = tarfile.TarInfo("home/user/passwd")
            evil.type, evil.linkname = tarfile.SYMTYPE, "/etc/passwd"
            return evil, None
        return info, data

    refused(rewrite(archive, tmp_path / "link.tar.gz", link), populated, "link pointing outside the home")
    assert not (tmp_path.parent / "outside.txt").exists()


def test_a_chain_of_links_cannot_carry_a_file_out_of_the_home(archive: Path, populated: Home, tmp_path: Path) -> None:
    """`user/b -> ..` and `user/a -> b/..` each look inside; followed, `a` is the staging folder's parent."""
    members = []
    for name, target in (("home/user/b", ".."), ("home/user/a", "b/..")):
        evil = tarfile.TarInfo(name)
        evil.type, evil.linkname = tarfile.SYMTYPE, target
        members.append((evil, None))
    payload = tarfile.TarInfo("home/user/a/escaped.txt")
    payload.size = 5
    members.append((payload, io.BytesIO(b"pwned")))
    chained = tmp_path / "chain.tar.gz"
    with tarfile.open(archive, "r:gz") as src, tarfile.open(chained, "w:gz") as dst:
        for info in src:
            if info.name == "home/config.toml":
                for member, data in members:
                    dst.addfile(member, data)
            dst.addfile(info, src.extractfile(info) if info.isfile() else None)
    refused(chained, populated, "link pointing outside the home")
    assert not list(tmp_path.rglob("escaped.txt"))


def test_cli_create_verify_restore_never_prints_secrets(populated: Home, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli.tar.gz"
    made = runner.invoke(app, ["backup", "create", "--home", str(populated.root), "-o", str(out)])
    assert made.exit_code == 0, made.output
    checked = runner.invoke(app, ["backup", "verify", str(out)])
    assert checked.exit_code == 0 and "intact" in checked.output
    target = tmp_path / "elsewhere"
    restored = runner.invoke(app, ["backup", "restore", str(out), "--home", str(target), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert (target / "custom_nodes" / "alpha" / "__init__.py").is_file()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(out.read_bytes()[:200])
    refusal = runner.invoke(app, ["backup", "restore", str(bad), "--home", str(target), "--yes"])
    assert refusal.exit_code == 2 and "truncated or corrupt" in refusal.output
    for result in (made, checked, restored, refusal):
        assert SECRET not in result.output
    assert os.path.exists(target / "config.toml")


def test_links_inside_are_kept_and_links_outside_are_left_out(populated: Home, tmp_path: Path) -> None:
    outside = tmp_path / "dev-pack"
    outside.mkdir()
    (populated.custom_nodes / "dev_pack").symlink_to(outside)
    (populated.user / "latest.json").symlink_to("default/workflows/flow.json")
    summary = create_backup(populated, tmp_path / "b.tar.gz")
    assert summary.external_links == ("custom_nodes/dev_pack",)
    target = Home(tmp_path / "restored")
    restore_backup(summary.path, target)
    assert (target.user / "latest.json").is_symlink() and (target.user / "latest.json").read_text() == '{"1": {}}'
    assert not os.path.lexists(target.custom_nodes / "dev_pack")
    assert verify_backup(summary.path)["format"] == "partyflow-backup"
