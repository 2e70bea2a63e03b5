"""Small videos in the codecs and stream layouts a frame sampler must handle, written with PyAV (offline, fast).

:func:`write_codec_video` kinds:

* ``h264_mp4``: libx264, no B-frames, keyframe every ``gop`` frames;
* ``h264_bframes_mp4``: libx264 with 3 B-frames (b-pyramid) - decode order differs from presentation order,
  some B-frames are not references;
* ``mpeg4_avi``: MPEG-4 part 2 in AVI;
* ``vp9_webm``: VP9 in WebM;
* ``vfr_mkv``: h264 in Matroska with irregular frame durations (variable frame rate: pts gaps 1-3 ticks).

Frames are moving noise patterns (every frame differs from its neighbours, so a wrong frame is visible).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np


KINDS = ("h264_mp4", "h264_bframes_mp4", "mpeg4_avi", "vp9_webm", "vfr_mkv")
_SUFFIX = {"h264_mp4": ".mp4", "h264_bframes_mp4": ".mp4", "mpeg4_avi": ".avi", "vp9_webm": ".webm", "vfr_mkv": ".mkv"}


def _frames(num_frames: int, width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(num_frames):
        shifted = np.roll(base, shift=(t * 2, t * 3), axis=(0, 1))
        box = ((xx - (t * 5) % width) ** 2 + (yy - (t * 3) % height) ** 2) < (min(width, height) // 4) ** 2
        frame = (shifted // 2).astype(np.uint8)
        frame[box] = (t * 37 % 256, 255 - t * 11 % 256, 128)
        frames[t] = frame
    return frames


def write_codec_video(
    path: str, kind: str, num_frames: int = 60, fps: int = 10, gop: int = 10, size: tuple[int, int] = (64, 48),
    seed: int = 0,
) -> str:
    r"""Write a ``kind`` video (see module docstring) of ``num_frames`` frames at ``fps``, ``size`` = (W, H),
    keyframe every ``gop`` frames; returns ``path``."""
    import av

    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {KINDS}")
    width, height = size
    frames = _frames(num_frames, width, height, seed)
    muxer = {"h264_mp4": "mp4", "h264_bframes_mp4": "mp4", "mpeg4_avi": "avi", "vp9_webm": "webm"}
    muxer["vfr_mkv"] = "matroska"
    codec = {"mpeg4_avi": "mpeg4", "vp9_webm": "libvpx-vp9"}.get(kind, "libx264")
    with av.open(path, mode="w", format=muxer[kind]) as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.gop_size = gop
        if codec == "libx264":
            bframes = 3 if kind == "h264_bframes_mp4" else 0
            stream.options = {
                "crf": "20", "preset": "veryfast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:"
                f"bframes={bframes}:b-pyramid={'normal' if bframes else 'none'}:b-adapt=0",
            }
        elif codec == "libvpx-vp9":
            stream.options = {"crf": "30", "deadline": "realtime", "cpu-used": "8", "g": str(gop)}
        else:
            stream.codec_context.qscale = 3
        if kind == "vfr_mkv":
            stream.codec_context.time_base = Fraction(1, fps * 3)
        pts = 0
        for t, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if kind == "vfr_mkv":
                frame.pts = pts
                frame.time_base = Fraction(1, fps * 3)
                pts += 1 + (t * 7) % 3  # durations of 1, 2 or 3 ticks
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def suffix(kind: str) -> str:
    r"""File suffix of a ``kind``."""
    return _SUFFIX[kind]
