"""Install the system audio library and this pack's requirements (ComfyUI-Manager runs this once, on install)."""

import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

if sys.platform.startswith("linux") and shutil.which("apt-get"):
    subprocess.run(["apt-get", "install", "-y", "libportaudio2"], check=False)
subprocess.check_call([sys.executable, "-m", "pip", "install", "-r", os.path.join(HERE, "requirements.txt")])
