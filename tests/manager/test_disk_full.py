"""A disk that fills up while a pack is copied in: a clear message, nothing half-installed, an audit record.

The limit is real: the CLI runs in a child process whose file size limit (RLIMIT_FSIZE) is smaller than one of
the pack's files, so the kernel refuses the write part way through the copy, as a full disk would.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from tests.manager.helpers import ROOT, cli, write_pack

from partyflow.config import Home
from partyflow.manager.audit import AuditLog
from partyflow.manager.staging import PAUSE_ENV
from partyflow.security.levels import MANAGER_LEVEL_ENV as LEVEL_ENV

LIMIT = 2 << 20


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def test_a_write_refused_during_the_copy_leaves_nothing_behind(home: Home, sources: Path) -> None:
    assert cli("nodes", "install", str(write_pack(sources / "small")), home=home).returncode == 0
    big = write_pack(sources / "big", files={"models/weights.bin": ""})
    (big / "models" / "weights.bin").write_bytes(os.urandom(2 * LIMIT))

    env = {k: v for k, v in os.environ.items() if k not in ("PARTYFLOW_HOME", LEVEL_ENV, PAUSE_ENV)}
    done = subprocess.run([sys.executable, "-m", "partyflow", "nodes", "install", str(big), "--home",
                           str(home.root)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
                          preexec_fn=_limited)
    assert done.returncode == 1, done.stdout + done.stderr
    message = " ".join(done.stderr.split())
    assert "file too large while writing into the home; nothing was changed" in message
    assert "free some disk space" in message and "Traceback" not in done.stderr

    assert sorted(p.name for p in home.custom_nodes.iterdir() if not p.name.startswith(".")) == ["small"]
    assert not any((home.root / "manager" / "staging").iterdir())
    assert not any((home.root / "manager" / "journal").iterdir())
    with AuditLog(home) as log:
        last = log.entries()[-1]
    assert (last.action, last.pack, last.result) == ("install", str(big), "failed")
    assert "File too large" in (last.error or "")
    listed = json.loads(cli("nodes", "list", "--installed", "--json", home=home).stdout)
    assert [p["name"] for p in listed] == ["small"]
