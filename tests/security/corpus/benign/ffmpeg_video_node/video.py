"""Extract frames and read metadata with ffmpeg/ffprobe, called with argument lists (no shell)."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def _tool(name):
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} was not found on PATH; install ffmpeg")
    return found


def probe(path):
    result = subprocess.run(
        [_tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_streams", "-show_format", str(path)],
        capture_output=True, text=True, check=True, timeout=120)
    return json.loads(result.stdout)


def extract_frames(path, fps, out_dir=None):
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="frames-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AV_LOG_FORCE_NOCOLOR": "1"}
    subprocess.run(["ffmpeg", "-hide_banner", "-y", "-i", str(path), "-vf", f"fps={fps}",
                    str(out_dir / "frame_%05d.png")], check=True, capture_output=True, env=env, timeout=3600)
    return sorted(out_dir.glob("frame_*.png"))


class VideoToFrames:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("STRING", {"default": ""}), "fps": ("FLOAT", {"default": 1.0})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "video"

    def run(self, video, fps):
        frames = extract_frames(video, fps)
        return ("\n".join(str(f) for f in frames),)


class VideoInfo:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video": ("STRING", {"default": ""})}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "run"
    CATEGORY = "video"

    def run(self, video):
        return (json.dumps(probe(video)["format"]),)
