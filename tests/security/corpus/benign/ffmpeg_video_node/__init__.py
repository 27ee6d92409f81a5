"""Video helpers built on the ffmpeg and ffprobe command-line tools."""

from .video import VideoInfo, VideoToFrames

NODE_CLASS_MAPPINGS = {"VideoToFrames": VideoToFrames, "VideoInfo": VideoInfo}
