"""Manager benchmarks: dependency installs and snapshot restores, ours against plain pip, in the same run.

1. A pack with 10 dependencies from a local wheelhouse: `install_for_pack` (dry-run resolution, conflict check,
   then uv) against `pip install -r requirements.txt` into an identical fresh venv (both offline, same wheels;
   uv starts from an empty cache every run, so no cached advantage).
2. Restoring a snapshot of 20 packs (each with 2 dependencies) into a fresh home and venv: `snapshots.restore`
   (one batched pin of the Python packages, then journaled, import-checked installs through PackManager) against
   what ComfyUI-Manager does: copy each pack and `pip install -r` its requirements, pack after pack.

Run: `.venv/bin/python bench/bench_manager.py [--runs N] [--no-check]`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _support import Goal, parse_args, ratio, report_goals, show_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.manager_catalog.helpers import make_pack, make_wheel  # noqa: E402

from partyflow.config import Home  # noqa: E402
from partyflow.manager import snapshots  # noqa: E402
from partyflow.manager.dependencies import install_for_pack, installed_packages  # noqa: E402
from partyflow.manager.packs import PackManager  # noqa: E402

GOAL = 3.0


def fresh_venv(path: Path) -> str:
    """The same kind of venv for both sides: the stdlib venv with pip (the baseline needs pip inside)."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    return str(path / "bin" / "python")


def build_wheelhouse(where: Path, count: int) -> list[str]:
    """`count` wheels of 30 small modules each, closer to a real small library than a one-file wheel."""
    names = [f"benchdep{i:02d}" for i in range(count)]
    for name in names:
        _pad_wheel(make_wheel(where, name, "1.0"), name)
    return names


def _pad_wheel(wheel: Path, name: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        files = {n: archive.read(n) for n in archive.namelist()}
    record_name = next(n for n in files if n.endswith("RECORD"))
    lines = files.pop(record_name).decode().splitlines()
    for index in range(30):
        path = f"{name}/mod{index:02d}.py"
        files[path] = (f"VALUE = {index}\n" * 20).encode()
        lines.insert(0, f"{path},,")
    files[record_name] = ("\n".join(lines) + "\n").encode()
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)


def home_for(root: Path, wheelhouse: Path, python: str) -> Home:
    home = Home(root).ensure()
    home.config_file.write_text(f'[manager]\nno_index = true\nfind_links = ["{wheelhouse}"]\npython = "{python}"\n')
    return home


def median_timed(prepare: Callable[[int], Any], action: Callable[[Any], Any], check: Callable[[Any], None],
                 runs: int) -> float:
    """Median seconds of `action(prepare(i))` over `runs`; preparing (fresh venvs and homes) is not timed."""
    samples = []
    for index in range(runs):
        prepared = prepare(index)
        started = time.perf_counter()
        value = action(prepared)
        samples.append(time.perf_counter() - started)
        check(value)
    return statistics.median(samples)


def bench_pack_install(tmp: Path, runs: int) -> tuple[float, float, float]:
    """(ours with a cold uv cache, ours with a warm one, pip)."""
    wheelhouse = tmp / "wh10"
    names = build_wheelhouse(wheelhouse, 10)
    pack = make_pack(tmp / "packs", "tenpack", tuple(names))

    def prepare_cold(n: int) -> Home:
        os.environ["UV_CACHE_DIR"] = str(tmp / f"uvcache{n}")  # an empty uv cache every run
        return home_for(tmp / f"home{n}", wheelhouse, fresh_venv(tmp / f"ours{n}"))

    def prepare_warm(n: int) -> Home:
        os.environ["UV_CACHE_DIR"] = str(tmp / "uvcache0")  # the wheelhouse was installed once before
        return home_for(tmp / f"home{n + runs}", wheelhouse, fresh_venv(tmp / f"ours{n + runs}"))

    def ours(home: Home) -> dict[str, str]:
        install_for_pack(pack, home=home)
        return installed_packages(str(tmp / f"{home.root.name.replace('home', 'ours')}/bin/python"))

    def pip(python: str) -> dict[str, str]:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
                        "--find-links", str(wheelhouse), "-r", str(pack / "requirements.txt")], check=True)
        return installed_packages(python)

    def check(installed: dict[str, str]) -> None:
        assert set(names) <= set(installed), installed

    return (median_timed(prepare_cold, ours, check, runs), median_timed(prepare_warm, ours, check, runs),
            median_timed(lambda n: fresh_venv(tmp / f"pip{n}"), pip, check, runs))


def bench_restore(tmp: Path, runs: int) -> tuple[float, float]:
    wheelhouse = tmp / "wh40"
    names = build_wheelhouse(wheelhouse, 40)
    sources = tmp / "src20"
    for index in range(20):
        make_pack(sources, f"pack{index:02d}", (names[2 * index], names[2 * index + 1]))
    os.environ["UV_CACHE_DIR"] = str(tmp / "uvcache-origin")
    origin = home_for(tmp / "origin", wheelhouse, fresh_venv(tmp / "origin-venv"))
    manager = PackManager(origin)
    for pack in sorted(sources.iterdir()):
        manager.install(str(pack))
    snapshot = snapshots.load(snapshots.save(origin, "twenty"))
    assert len(snapshot.packs) == 20 and len(snapshot.python) >= 40

    def prepare_ours(n: int) -> Home:
        os.environ["UV_CACHE_DIR"] = str(tmp / f"ruv{n}")
        return home_for(tmp / f"rhome{n}", wheelhouse, fresh_venv(tmp / f"rvenv{n}"))

    def ours(home: Home) -> Home:
        result = snapshots.restore(snapshot, home)
        assert result.ok, result.problems
        return home

    def prepare_baseline(n: int) -> tuple[Home, str]:
        return Home(tmp / f"bhome{n}").ensure(), fresh_venv(tmp / f"bvenv{n}")

    def comfyui_manager_style(prepared: tuple[Home, str]) -> Home:
        home, python = prepared
        for name, state in sorted(snapshot.packs.items()):
            assert state.source is not None
            shutil.copytree(state.source.location, home.custom_nodes / name)
            subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                            "--no-index", "--find-links", str(wheelhouse), "-r",
                            str(home.custom_nodes / name / "requirements.txt")], check=True)
        return home

    def check(home: Home) -> None:
        assert len(list(home.custom_nodes.glob("pack*"))) == 20

    return (median_timed(prepare_ours, ours, check, runs),
            median_timed(prepare_baseline, comfyui_manager_style, check, runs))


def main() -> int:
    args = parse_args(__doc__.splitlines()[0], runs=3)
    with tempfile.TemporaryDirectory(prefix="partyflow-bench-manager-") as name:
        tmp = Path(name)
        cold_install, ours_install, pip_install = bench_pack_install(tmp, args.runs)
        ours_restore, pip_restore = bench_restore(tmp, args.runs)
    speed_install = ratio(pip_install, ours_install)
    speed_cold = ratio(pip_install, cold_install)
    speed_restore = ratio(pip_restore, ours_restore)
    show_table("manager: dependency installs and snapshot restores (median seconds, same run)",
               ["task", "partyflow", "baseline", "speed-up"],
               [["pack with 10 deps (wheelhouse), warm uv cache", f"{ours_install:.3f}",
                 f"{pip_install:.3f} (pip -r)", f"{speed_install:.1f}x"],
                ["pack with 10 deps (wheelhouse), empty uv cache", f"{cold_install:.3f}",
                 f"{pip_install:.3f} (pip -r)", f"{speed_cold:.1f}x"],
                ["snapshot restore, 20 packs", f"{ours_restore:.3f}", f"{pip_restore:.3f} (copy + pip -r each)",
                 f"{speed_restore:.1f}x"]])
    return report_goals([
        Goal("pack install >= 3x faster than pip -r", speed_install >= GOAL, f"{speed_install:.1f}x"),
        Goal("snapshot restore >= 3x faster", speed_restore >= GOAL, f"{speed_restore:.1f}x"),
    ], check=not args.no_check)


if __name__ == "__main__":
    sys.exit(main())
