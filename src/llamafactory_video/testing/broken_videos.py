"""Videos that are only partly decodable, for the tests of the pre-training probe (``data/video_probe.py``).

* :func:`write_faststart_mp4`: an mp4 with its ``moov`` index at the front (``movflags=faststart``), as streaming
  sites serve them: cut short, it still opens and declares all its frames; decoding fails part way.
* :func:`cut_file`: the first ``fraction`` of a file's bytes (a download or copy that stopped early).
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from .synthetic_videos import action_classes, encoder_for, render_clip, write_video


def clip_frames(num_frames: int = 48, size: int = 64, seed: int = 0) -> np.ndarray:
    r"""``(num_frames, size, size, 3)`` uint8 frames of a synthetic moving shape."""
    rng = np.random.default_rng(seed)
    return render_clip(action_classes(1)[0], rng, size=size, num_frames=num_frames)


def write_faststart_mp4(frames: np.ndarray, path: str, fps: float = 8) -> str:
    r"""Encode ``frames`` to ``path`` as an mp4 whose index (``moov``) precedes the media data."""
    import av

    codec, pix_fmt = encoder_for("mp4")
    height, width = frames.shape[1:3]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.thread_count = 1
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def cut_file(src: str, dst: str, fraction: float) -> str:
    r"""Write the first ``fraction`` of ``src``'s bytes to ``dst``."""
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[: int(len(data) * fraction)])
    return dst


def write_broken_set(folder: str, num_frames: int = 48, fps: float = 8, fraction: float = 0.3) -> dict[str, str]:
    r"""Good and cut-short videos in every container LlamaFactory reads, plus a 0-byte file.

    Keys: ``faststart`` / ``mp4`` / ``avi`` / ``webm`` / ``mkv`` (whole files), ``cut_<key>`` (their first
    ``fraction`` of bytes) and ``empty``.
    """
    os.makedirs(folder, exist_ok=True)
    frames = clip_frames(num_frames)
    paths = {"faststart": write_faststart_mp4(frames, os.path.join(folder, "faststart.mp4"), fps)}
    for ext in ("mp4", "avi", "webm", "mkv"):
        path = os.path.join(folder, f"whole.{ext}")
        write_video(frames, path, fps=fps)
        paths[ext] = path
    for key in list(paths):
        src = paths[key]
        paths[f"cut_{key}"] = cut_file(src, os.path.join(folder, "cut_" + os.path.basename(src)), fraction)
    empty = os.path.join(folder, "empty.mp4")
    open(empty, "wb").close()
    paths["empty"] = empty
    return paths
