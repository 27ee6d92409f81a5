"""Corpus sample: system and Python package installs, called from the pack's __init__ (so at every import)."""

import os
import platform
import subprocess
import sys


def platform_name():
    return platform.system().lower()


def _has_debian_package(name):
    return subprocess.run(["dpkg", "-s", name], capture_output=True).returncode == 0


def ensure_audio_library(system):
    if system == "linux" and not _has_debian_package("libportaudio2"):
        os.system("apt-get update")
        os.system("apt-get install -y libportaudio2")


def ensure_client_library():
    python = sys.executable
    subprocess.check_call([python, "-m", "pip", "uninstall", "-y", "websocket"])
    subprocess.check_call([python, "-m", "pip", "install", "websocket-client"])
