"""Security levels: ComfyUI-Manager's risk table, the config setting, and an untrusted caller (a server)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.manager.helpers import GitRemote, write_pack

from partyflow.config import Home
from partyflow.manager.errors import ManagerError
from partyflow.manager.packs import PackManager
from partyflow.manager.security import security_level
from partyflow.security.levels import Risk, SecurityLevel, allowed, allows_install_script

S, N, NM, W = SecurityLevel.STRONG, SecurityLevel.NORMAL, SecurityLevel.NORMAL_MINUS, SecurityLevel.WEAK


def test_risk_table() -> None:
    assert [allows_install_script(level) for level in (S, N, NM, W)] == [False, False, True, True]
    assert [allowed(Risk.HIGH_PLUS, level, loopback=False) for level in (S, N, NM, W)] == [False] * 4
    assert allowed(Risk.HIGH_PLUS, W, loopback=False, personal_cloud=True)
    assert [allowed(Risk.HIGH, level, loopback=False) for level in (S, N, NM, W)] == [False, False, False, True]
    assert [allowed(Risk.MIDDLE, level) for level in (S, N, NM, W)] == [False, True, True, True]
    assert allowed(Risk.LOW, S)


def test_level_from_config(home: Home) -> None:
    home.root.mkdir(parents=True)
    assert security_level(home) is N
    home.config_file.write_text('[manager]\nsecurity_level = "weak"\n')
    assert security_level(home) is W


def test_bad_level_is_a_user_error(home: Home, sources: Path) -> None:
    home.root.mkdir(parents=True)
    home.config_file.write_text('[manager]\nsecurity_level = "lax"\n')
    src = write_pack(sources / "p", files={"install.py": "pass\n"})
    with pytest.raises(ManagerError, match="must be one of strong, normal, normal-, weak") as refused:
        PackManager(home).install(str(src))
    assert refused.value.user_error


def test_untrusted_caller_gets_the_whole_table(home: Home, sources: Path, git_remote: GitRemote) -> None:
    server = PackManager(home, trusted=False, loopback=True)
    with pytest.raises(ManagerError, match="not allowed at security level 'normal'"):
        server.install(str(git_remote.bare))
    home.config_file.write_text('[manager]\nsecurity_level = "normal-"\n')
    server.install(str(git_remote.bare))
    remote = PackManager(home, trusted=False, loopback=False)
    with pytest.raises(ManagerError, match="not allowed"):
        remote.install(str(write_pack(sources / "local")))
    remote.uninstall("remotepack")  # middle risk: allowed at normal-


def test_switching_packs_on_or_off_is_middle_risk_for_remote_callers(home: Home, sources: Path) -> None:
    PackManager(home).install(str(write_pack(sources / "togglable")))  # a local administrator installs it
    home.config_file.write_text('[manager]\nsecurity_level = "strong"\n')
    server = PackManager(home, trusted=False, loopback=True)
    with pytest.raises(ManagerError, match="not allowed at security level 'strong'"):
        server.disable("togglable")
    assert PackManager(home).disable("togglable").changed  # the local administrator still may
