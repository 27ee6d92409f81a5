"""Dependency installs into fresh venvs from a local wheelhouse: resolve first, refuse conflicts, roll back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from partyflow.config import Home
from partyflow.manager import dependencies as deps
from partyflow.manager.dependencies import DependencyConflict, DependencyError, install_for_pack

from .conftest import write_config
from .helpers import make_pack, make_venv

OFFLINE = '[manager]\nno_index = true\nfind_links = ["{wh}"]\n'


@pytest.fixture
def offline_home(home: Home, wheelhouse: Path) -> Home:
    write_config(home, OFFLINE.format(wh=wheelhouse))
    return home


@pytest.fixture
def venv(tmp_path: Path) -> str:
    return make_venv(tmp_path / "venv")


def test_reads_requirements_txt_and_pyproject(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, "p", ("alpha>=1  # inline comment", "", "--index-url https://evil.invalid/simple",
                                      "-r more.txt"), pyproject_deps=("gamma", "alpha>=1"))
    (pack / "more.txt").write_text("beta==1.0\n")
    reqs, skipped = deps.read_requirements(pack)
    assert reqs == ["alpha>=1", "beta==1.0"]  # requirements.txt wins, as with ComfyUI-Manager
    txt = (pack / "requirements.txt").read_text()
    (pack / "requirements.txt").unlink()
    assert deps.read_requirements(pack) == (["gamma", "alpha>=1"], [])  # pyproject only without requirements.txt
    (pack / "requirements.txt").write_text(txt)
    assert skipped == ["requirements.txt:3: --index-url https://evil.invalid/simple"]
    (pack / "requirements.txt").write_text("-r ../outside.txt\n")
    with pytest.raises(DependencyError, match="outside the pack"):
        deps.read_requirements(pack)
    (pack / "requirements.txt").write_text("not a requirement !!\n")
    with pytest.raises(DependencyError, match="requirements.txt:1"):
        deps.read_requirements(pack)


def test_installs_from_the_wheelhouse_and_rolls_back(offline_home: Home, venv: str, tmp_path: Path) -> None:
    pack = make_pack(tmp_path, "p", ("gamma", "beta"), pyproject_deps=("beta",))
    report = install_for_pack(pack, home=offline_home, python=venv)
    assert report.tool == "uv" and report.offline
    assert report.installed == {"gamma": "1.0", "delta": "1.5", "beta": "1.0", "alpha": "1.0"}
    assert deps.installed_packages(venv).keys() >= {"alpha", "beta", "gamma", "delta"}
    again = install_for_pack(pack, home=offline_home, python=venv)
    assert again.installed == {} and not again.changed_anything
    report.rollback()
    assert not deps.installed_packages(venv).keys() & {"alpha", "beta", "gamma", "delta"}


def test_conflict_with_an_installed_package_is_refused(offline_home: Home, venv: str, tmp_path: Path) -> None:
    install_for_pack(make_pack(tmp_path, "first", ("alpha==2.0",)), home=offline_home, python=venv)
    second = make_pack(tmp_path, "second", ("beta",))  # beta needs alpha<2
    with pytest.raises(DependencyConflict) as info:
        install_for_pack(second, home=offline_home, python=venv)
    assert "alpha 2.0 -> 1.0" in str(info.value) and "--allow-conflicts" in str(info.value)
    assert deps.installed_packages(venv)["alpha"] == "2.0" and "beta" not in deps.installed_packages(venv)
    report = install_for_pack(second, home=offline_home, python=venv, allow_conflicts=True)
    assert report.changed == {"alpha": ("2.0", "1.0")} and report.installed == {"beta": "1.0"}
    report.rollback()
    after = deps.installed_packages(venv)
    assert after["alpha"] == "2.0" and "beta" not in after


def test_protected_packages_and_host_pins(offline_home: Home, venv: str, tmp_path: Path, wheelhouse: Path) -> None:
    # numpy is protected: a pack may not install a version the config forbids, nor change the installed one
    write_config(offline_home, OFFLINE.format(wh=wheelhouse) + 'protected = ["numpy>=1"]\n')
    with pytest.raises(DependencyConflict, match=r"numpy absent -> 0.9 \(the host requires numpy>=1\)"):
        install_for_pack(make_pack(tmp_path, "old", ("needs-old-numpy",)), home=offline_home, python=venv)
    install_for_pack(make_pack(tmp_path, "np", ("numpy==1.0",)), home=offline_home, python=venv)
    with pytest.raises(DependencyConflict, match=r"numpy 1.0 -> 0.9 \(protected package would change\)"):
        install_for_pack(make_pack(tmp_path, "old2", ("numpy<1",)), home=offline_home, python=venv)
    # partyflow's own requirements are protected too
    protected = deps.protected_packages(offline_home)
    assert "typer" in protected and "rich" in protected and str(protected["rich"]) == ">=13"


def test_unresolvable_requirement_changes_nothing(offline_home: Home, venv: str, tmp_path: Path) -> None:
    with pytest.raises(DependencyError, match="cannot resolve") as info:
        install_for_pack(make_pack(tmp_path, "p", ("alpha", "no-such-thing>=1")), home=offline_home, python=venv)
    assert "no-such-thing" in str(info.value)
    assert "alpha" not in deps.installed_packages(venv)


def test_pip_fallback_uses_pip_report(offline_home: Home, wheelhouse: Path, tmp_path: Path) -> None:
    write_config(offline_home, OFFLINE.format(wh=wheelhouse) + 'installer = "pip"\n')
    venv = make_venv(tmp_path / "v")
    report = install_for_pack(make_pack(tmp_path, "p", ("beta",)), home=offline_home, python=venv)
    assert report.tool == "pip" and report.installed == {"beta": "1.0", "alpha": "1.0"}
    report.rollback()
    assert "beta" not in deps.installed_packages(venv)


def test_wheelhouse_in_the_home_is_used_first(home: Home, wheelhouse: Path, venv: str, tmp_path: Path) -> None:
    shutil.copytree(wheelhouse, home.wheelhouse)
    write_config(home, "[manager]\nno_index = true\n")
    report = install_for_pack(make_pack(tmp_path, "p", ("delta",)), home=home, python=venv)
    assert report.installed == {"delta": "1.5"}


def test_missing_requirements(tmp_path: Path) -> None:
    pack = make_pack(tmp_path, "p", ("alpha>=2", "beta", "gamma; python_version < '3'"))
    assert deps.missing_requirements(pack, {"alpha": "1.0"}) == ["alpha>=2 (installed: 1.0)", "beta"]


def test_torch_comes_from_the_cpu_index_on_machines_without_a_gpu(home: Home,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deps, "has_nvidia_gpu", lambda: False)
    adds_torch = {"torch": "2.5.1", "filelock": "3.0"}
    assert deps.torch_index_url(home, adds_torch, {}) == deps.CPU_TORCH_INDEX
    assert deps.torch_index_url(home, adds_torch, {"torch": "2.5.1"}) is None  # already there: nothing to choose
    assert deps.torch_index_url(home, {"filelock": "3.0"}, {}) is None
    monkeypatch.setattr(deps, "has_nvidia_gpu", lambda: True)
    assert deps.torch_index_url(home, adds_torch, {}) is None
    write_config(home, '[manager]\ntorch_index = "cpu"\n')
    assert deps.torch_index_url(home, adds_torch, {}) == deps.CPU_TORCH_INDEX
    installer = deps.Installer(tool="uv", command=("uv", "pip"), python="python",
                               extra_index_urls=(deps.CPU_TORCH_INDEX,))
    assert installer.source_args(offline=False)[-2:] == ["--extra-index-url", deps.CPU_TORCH_INDEX]
    assert "--extra-index-url" not in installer.source_args(offline=True)
