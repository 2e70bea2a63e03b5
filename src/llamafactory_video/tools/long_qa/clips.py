r"""Slicing a long video into clips and reading each clip's frames with the host's sampling rule.

A clip ``[start, end)`` covers the frames ``round(start * fps) .. round(end * fps) - 1``; within it the frames
sampled are the ones LlamaFactory would sample from a video file of that length
(:func:`llamafactory_video.data.subtitles.sample_indices`), so a clip captioned here looks to the model like
a short training video with the same ``video_fps`` / ``video_maxlen``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ...data.subtitles import VideoInfo, sample_indices


@dataclass(frozen=True)
class Clip:
    index: int
    start: float
    end: float
    frames: tuple[int, ...]
    """Absolute indices of the sampled frames (decode order, as the host counts them)."""
    fps: float

    @property
    def timestamps(self) -> list[float]:
        r"""Seconds of the sampled frames."""
        return [f / self.fps for f in self.frames]


def slice_spans(duration: float, clip_seconds: float, overlap: float = 0.0) -> list[tuple[float, float]]:
    r"""``[start, end)`` spans of ``clip_seconds`` every ``clip_seconds - overlap`` seconds covering ``[0, duration]``.

    The last span ends at ``duration``; a remainder shorter than a quarter clip is merged into the span before.
    """
    if clip_seconds <= 0:
        raise ValueError(f"--clip-seconds must be > 0, got {clip_seconds}")
    if not 0 <= overlap < clip_seconds:
        raise ValueError(f"--overlap must be >= 0 and < --clip-seconds ({clip_seconds}), got {overlap}")
    if duration <= 0:
        raise ValueError(f"video duration must be > 0, got {duration}")
    step = clip_seconds - overlap
    spans: list[tuple[float, float]] = []
    start = 0.0
    while True:
        end = min(start + clip_seconds, duration)
        spans.append((round(start, 6), round(end, 6)))
        if end >= duration - 1e-9:
            break
        start += step
    if len(spans) > 1 and spans[-1][1] - spans[-1][0] < clip_seconds / 4:
        spans[-2:] = [(spans[-2][0], spans[-1][1])]
    return spans


def make_clips(
    info: VideoInfo, clip_seconds: float, overlap: float = 0.0, video_fps: float = 2.0, video_maxlen: int = 128
) -> list[Clip]:
    r"""The clips of a video and the frames the host's rule samples in each."""
    clips = []
    for i, (start, end) in enumerate(slice_spans(info.duration, clip_seconds, overlap)):
        first = min(round(start * info.fps), max(info.total_frames - 1, 0))
        last = min(round(end * info.fps), info.total_frames)
        count = max(1, last - first)
        rel = sample_indices(count, end - start, video_fps, video_maxlen)
        clips.append(Clip(i, start, end, tuple(first + r for r in rel), info.fps))
    return clips


def _fit(image: Any, max_pixels: int | None) -> Any:
    if max_pixels and image.width * image.height > max_pixels:
        scale = math.sqrt(max_pixels / (image.width * image.height))
        image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    return image


def iter_clip_frames(
    path: str, clips: Sequence[Clip], max_pixels: int | None = None
) -> Iterator[tuple[Clip, list[Any]]]:
    r"""Yield ``(clip, frames)`` (PIL images) in clip order, decoding the video once, front to back; each clip
    is yielded as soon as its last frame is decoded, so memory holds about one clip's frames."""
    import av

    pending = sorted(clips, key=lambda c: (max(c.frames), c.index))
    wanted: dict[int, int] = {}  # frame index -> number of pending clips that need it
    for clip in pending:
        for f in set(clip.frames):
            wanted[f] = wanted.get(f, 0) + 1
    frames: dict[int, Any] = {}
    position = 0
    last_index = -1
    with av.open(path, "r") as container:
        stream = next(s for s in container.streams if s.type == "video")
        for last_index, frame in enumerate(container.decode(stream)):
            if last_index in wanted:
                frames[last_index] = _fit(frame.to_image(), max_pixels)
            while position < len(pending) and max(pending[position].frames) <= last_index:
                clip = pending[position]
                yield clip, [frames[f] for f in clip.frames]
                for f in set(clip.frames):
                    wanted[f] -= 1
                    if not wanted[f]:
                        del wanted[f]
                        frames.pop(f, None)
                position += 1
            if position >= len(pending):
                return
    # frame count overestimated by the container: use the last decoded frames for what is left
    for clip in pending[position:]:
        available = sorted(frames) or []
        if not available:
            raise ValueError(f"{path}: decoded {last_index + 1} frames, none for clip {clip.index}")
        yield clip, [frames[f] if f in frames else frames[available[-1]] for f in clip.frames]
