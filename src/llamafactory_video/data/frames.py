"""Decode a video into frames exactly as LlamaFactory does for its multimodal models (PyAV; ``video_fps``,
``video_maxlen``; ``video_max_pixels`` / ``video_min_pixels``), for models that read frames as images."""

import os
from typing import Any


def load_video_frames(
    path: str,
    video_fps: float = 2.0,
    video_maxlen: int = 128,
    max_pixels: int = 256 * 256,
    min_pixels: int = 16 * 16,
) -> list[Any]:
    r"""RGB ``PIL`` frames of ``path``: ``min(total, video_maxlen, floor(duration * video_fps))`` frames spread
    evenly over the clip (at least 1), resized into ``[min_pixels, max_pixels]`` — the host's own
    ``_regularize_videos`` of its base multimodal plugin, so every stage samples frames the same way."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file not found: {path}")
    from llamafactory.data.mm_plugin import get_mm_plugin

    plugin = get_mm_plugin("base")
    out = plugin._regularize_videos(
        [path],
        video_fps=video_fps,
        video_maxlen=video_maxlen,
        image_max_pixels=max_pixels,
        image_min_pixels=min_pixels,
    )
    frames = out["videos"][0]
    if not frames:
        raise ValueError(f"no frame could be decoded from {path}")
    return frames
