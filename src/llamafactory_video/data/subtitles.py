r"""Subtitles in the prompt: parse ``.srt`` / ``.vtt``, align cues to the sampled frames, format them as text.

The frames a Qwen2-VL-family model sees are the ones LlamaFactory's ``mm_plugin`` samples
(``BasePlugin._get_video_sample_indices``): ``n = min(total_frames, video_maxlen, max(1, floor(duration *
video_fps)))`` indices spread with ``linspace(0, total_frames - 1, n)``. :func:`sample_indices` is that rule
(a unit test pins it to the host's function), :func:`frame_timestamps` turns it into seconds, and
:func:`align_cues` attaches every cue to the sampled frames whose time window it overlaps (frame ``i`` covers
the span from the midpoint with its predecessor to the midpoint with its successor). :func:`format_subtitles`
writes the result as the text inserted into the prompt, e.g.::

    Subtitles (timed to the 8 sampled frames):
    [frames 1-2, 0.0s-1.5s] Hello there.
    [frame 3, 2.0s] General Kenobi.

Parsing is pure (standard library); only :func:`probe_video` imports PyAV.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

SUBTITLE_EXTENSIONS = (".srt", ".vtt")
HEADER = "Subtitles (timed to the {n} sampled frames):"
HEADER_CLIP = "Subtitles:"


class SubtitleError(ValueError):
    r"""A malformed subtitle file; the message starts with ``file:line``."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        super().__init__(f"{source}{f':{line}' if line is not None else ''}: {message}")


@dataclass(frozen=True)
class Cue:
    r"""One subtitle cue: ``start`` / ``end`` in seconds, ``text`` with tags removed and lines joined by spaces."""

    start: float
    end: float
    text: str


# ----------------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------------

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[.,](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"<[^>]*>")  # <i>, </b>, <font color=...>, <c.yellow>, <v Speaker>, <00:00:01.000>
_ASS_TAG = re.compile(r"\{\\[^}]*\}")  # {\an8} positioning left by some SRT exporters
_ENTITIES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&nbsp;": " ", "&lrm;": "", "&rlm;": ""}


def _seconds(hours: str | None, minutes: str, seconds: str, millis: str | None) -> float:
    frac = int(millis.ljust(3, "0")) / 1000.0 if millis else 0.0
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + frac


def _clean(lines: Sequence[str]) -> str:
    text = " ".join(line.strip() for line in lines if line.strip())
    text = _ASS_TAG.sub("", _TAG.sub("", text))
    for entity, char in _ENTITIES.items():
        text = text.replace(entity, char)
    return " ".join(text.split())


def _blocks(text: str) -> list[tuple[int, list[str]]]:
    r"""Blank-line separated blocks as ``(first_line_number, lines)``; BOM and CR/CRLF endings removed."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 1
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not current:
                start = number
            current.append(line)
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _cue_from_block(source: str, start_line: int, lines: list[str], vtt: bool) -> Cue | None:
    for offset, line in enumerate(lines[:2]):  # SRT: index line then timing; VTT: optional identifier then timing
        match = _TIMING.match(line)
        if match:
            g = match.groups()
            begin, end = _seconds(*g[0:4]), _seconds(*g[4:8])
            if end < begin:
                raise SubtitleError(
                    source, start_line + offset, f"cue ends ({end:.3f}s) before it starts ({begin:.3f}s)"
                )
            text = _clean(lines[offset + 1 :])
            return Cue(begin, end, text) if text else None
        if "-->" in line:
            raise SubtitleError(source, start_line + offset, f"malformed timing line {line.strip()!r}")
    if vtt:
        return None  # STYLE / REGION blocks and other metadata
    raise SubtitleError(source, start_line, f"no 'start --> end' timing line in cue {lines[0].strip()!r}")


def parse_srt(text: str, source: str = "<srt>") -> list[Cue]:
    r"""Cues of SubRip text (numbered blocks ``1`` / ``00:00:01,000 --> 00:00:02,500`` / text lines)."""
    cues = []
    for start_line, lines in _blocks(text):
        cue = _cue_from_block(source, start_line, lines, vtt=False)
        if cue is not None:
            cues.append(cue)
    return cues


def parse_vtt(text: str, source: str = "<vtt>") -> list[Cue]:
    r"""Cues of WebVTT text: the ``WEBVTT`` header block, ``NOTE`` / ``STYLE`` / ``REGION`` blocks and cue
    settings (``align:start``) are skipped; ``<c.class>`` / ``<v Name>`` / inline timestamp tags are removed."""
    blocks = _blocks(text)
    if not blocks or not blocks[0][1][0].strip().startswith("WEBVTT"):
        raise SubtitleError(source, 1, "a WebVTT file must start with 'WEBVTT'")
    cues = []
    for start_line, lines in blocks[1:]:
        if lines[0].strip().split(" ", 1)[0] in ("NOTE", "STYLE", "REGION"):
            continue
        cue = _cue_from_block(source, start_line, lines, vtt=True)
        if cue is not None:
            cues.append(cue)
    return cues


def parse_subtitles(text: str, source: str = "<subtitles>") -> list[Cue]:
    r"""Cues of SRT or WebVTT text (WebVTT when it starts with ``WEBVTT``), sorted by start time."""
    stripped = text.lstrip("\ufeff").lstrip()
    cues = parse_vtt(text, source) if stripped.startswith("WEBVTT") else parse_srt(text, source)
    return sorted(cues, key=lambda cue: (cue.start, cue.end))


def load_subtitles(path: str | os.PathLike) -> list[Cue]:
    r"""Cues of a ``.srt`` / ``.vtt`` file (UTF-8, with or without BOM; cp1252 fallback for old SRT files)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SubtitleError(path, None, "subtitle file not found")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1252", errors="replace")
    return parse_subtitles(text, path)


def find_sidecar(video: str | os.PathLike) -> str | None:
    r"""The subtitle file next to ``video``: ``clip.srt`` / ``clip.vtt``, else ``clip.<lang>.srt`` / ``.vtt``."""
    video = os.fspath(video)
    stem = os.path.splitext(video)[0]
    for ext in SUBTITLE_EXTENSIONS:
        if os.path.isfile(stem + ext):
            return stem + ext
    folder, base = os.path.split(stem)
    try:
        names = sorted(os.listdir(folder or "."))
    except OSError:
        return None
    for name in names:
        head, ext = os.path.splitext(name)
        if ext.lower() in SUBTITLE_EXTENSIONS and head.startswith(base + ".") and "." not in head[len(base) + 1 :]:
            return os.path.join(folder, name)
    return None


def format_timestamp(seconds: float, vtt: bool = False) -> str:
    r"""``HH:MM:SS,mmm`` (SRT) or ``HH:MM:SS.mmm`` (VTT)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{'.' if vtt else ','}{millis:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    r"""SubRip text of ``cues`` (parses back to the same cues at millisecond precision)."""
    blocks = [
        f"{i}\n{format_timestamp(cue.start)} --> {format_timestamp(cue.end)}\n{cue.text}\n"
        for i, cue in enumerate(cues, start=1)
    ]
    return "\n".join(blocks)


# ----------------------------------------------------------------------------------------------------------------
# Frame sampling (the host's rule) and alignment
# ----------------------------------------------------------------------------------------------------------------


def sample_indices(total_frames: int, duration: float, video_fps: float, video_maxlen: int) -> list[int]:
    r"""The frame indices LlamaFactory samples from a decoded video (``_get_video_sample_indices``).

    ``total_frames == 0`` (unknown length) gives ``0 .. video_maxlen - 1`` as in the host.
    """
    if total_frames == 0:
        return [int(v) for v in _linspace(0, video_maxlen - 1, video_maxlen)]
    count = max(1, math.floor(float(duration) * video_fps))
    count = min(total_frames, video_maxlen, count)
    return [int(v) for v in _linspace(0, total_frames - 1, count)]


def _linspace(start: float, stop: float, num: int) -> list[float]:
    import numpy as np  # the host's rounding: float64 linspace truncated to int32

    return np.linspace(start, stop, num).astype(np.int32).tolist()


@dataclass(frozen=True)
class VideoInfo:
    r"""What the host's sampler reads from a video stream."""

    total_frames: int
    duration: float
    fps: float

    def timestamps(self, video_fps: float = 2.0, video_maxlen: int = 128) -> list[float]:
        return frame_timestamps(self, video_fps, video_maxlen)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    r"""Frame count, duration (seconds) and average frame rate of ``path``'s first video stream (PyAV)."""
    import av

    path = os.fspath(path)
    try:
        container = av.open(path, "r")
    except Exception as err:  # noqa: BLE001 - av raises many error types
        raise ValueError(f"{path}: cannot open video: {err}") from None
    with container:
        stream = next((s for s in container.streams if s.type == "video"), None)
        if stream is None:
            raise ValueError(f"{path}: no video stream")
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = (stream.frames or 0) / fps
        total = int(stream.frames or 0)
        if total == 0:  # some containers (webm) do not store the count: count packets
            total = sum(1 for packet in container.demux(stream) if packet.size)
    return VideoInfo(total, duration, fps)


def frame_timestamps(info: VideoInfo, video_fps: float = 2.0, video_maxlen: int = 128) -> list[float]:
    r"""Seconds of the frames the host samples from a video described by ``info``."""
    return [index / info.fps for index in sample_indices(info.total_frames, info.duration, video_fps, video_maxlen)]


def frame_windows(timestamps: Sequence[float], start: float = 0.0, end: float = math.inf) -> list[tuple[float, float]]:
    r"""The span each sampled frame stands for: midpoints between neighbours, ``start`` / ``end`` at the ends."""
    if not timestamps:
        return []
    bounds = [start] + [(a + b) / 2 for a, b in itertools.pairwise(timestamps)] + [end]
    return [(bounds[i], bounds[i + 1]) for i in range(len(timestamps))]


@dataclass(frozen=True)
class AlignedCue:
    r"""A cue and the (0-based, inclusive) range of sampled frames it overlaps."""

    first_frame: int
    last_frame: int
    start: float
    end: float
    text: str


def align_cues(
    cues: Sequence[Cue], timestamps: Sequence[float], start: float = 0.0, end: float = math.inf
) -> list[AlignedCue]:
    r"""Attach each cue to the sampled frames whose window (:func:`frame_windows`) it overlaps.

    Cues outside ``[start, end)`` (a clip of a longer video) are dropped; a cue shorter than the gap between
    two frames still lands on the frame whose window contains it. Consecutive cues with the same text (karaoke
    style roll-ups) are merged.
    """
    windows = frame_windows(timestamps, start, end)
    aligned: list[AlignedCue] = []
    for cue in cues:
        if cue.end <= start or cue.start >= end or not cue.text:
            continue
        hits = [i for i, (a, b) in enumerate(windows) if cue.start < b and cue.end > a]
        if not hits and cue.start == cue.end:  # zero-length cue: the window containing its instant
            hits = [i for i, (a, b) in enumerate(windows) if a <= cue.start < b]
        if not hits:
            continue
        item = AlignedCue(hits[0], hits[-1], cue.start, cue.end, cue.text)
        if aligned and aligned[-1].text == item.text and item.first_frame <= aligned[-1].last_frame + 1:
            prev = aligned[-1]
            item = AlignedCue(prev.first_frame, max(prev.last_frame, item.last_frame), prev.start, item.end, item.text)
            aligned[-1] = item
        else:
            aligned.append(item)
    return aligned


def format_subtitles(
    aligned: Sequence[AlignedCue],
    timestamps: Sequence[float],
    max_chars: int | None = 2000,
    header: str | None = None,
) -> str:
    r"""The prompt text for ``aligned`` cues: a header line, then ``[frames a-b, t0s-t1s] text`` per cue.

    Frame numbers are 1-based; times are the sampled frames' timestamps. Empty string when no cue is aligned.
    Lines past ``max_chars`` characters are left out (and an ellipsis line says how many).
    """
    if not aligned:
        return ""
    lines = [header if header is not None else HEADER.format(n=len(timestamps))]
    used = len(lines[0])
    for i, cue in enumerate(aligned):
        t0, t1 = timestamps[cue.first_frame], timestamps[cue.last_frame]
        if cue.first_frame == cue.last_frame:
            where = f"frame {cue.first_frame + 1}, {t0:.1f}s"
        else:
            where = f"frames {cue.first_frame + 1}-{cue.last_frame + 1}, {t0:.1f}s-{t1:.1f}s"
        line = f"[{where}] {cue.text}"
        if max_chars is not None and used + len(line) + 1 > max_chars:
            lines.append(f"... ({len(aligned) - i} more cues left out)")
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def subtitle_text(
    cues: Sequence[Cue],
    timestamps: Sequence[float],
    start: float = 0.0,
    end: float = math.inf,
    max_chars: int | None = 2000,
) -> str:
    r""":func:`align_cues` then :func:`format_subtitles`."""
    return format_subtitles(align_cues(cues, timestamps, start, end), timestamps, max_chars=max_chars)


def resolve_cues(video: str | None, subtitles: str | None = None) -> list[Cue] | None:
    r"""Cues from ``subtitles`` (a ``.srt`` / ``.vtt`` path, or SRT / WebVTT text), else from the sidecar file
    next to ``video``; ``None`` when there is neither."""
    if subtitles:
        if "-->" not in subtitles and os.path.splitext(subtitles)[1].lower() in SUBTITLE_EXTENSIONS:
            return load_subtitles(subtitles)
        if "-->" in subtitles:
            return parse_subtitles(subtitles, source=f"subtitles of {video}" if video else "<subtitles>")
        raise SubtitleError(str(subtitles)[:80], None, "expected a .srt / .vtt path or SRT / WebVTT text")
    if video:
        sidecar = find_sidecar(video)
        if sidecar:
            return load_subtitles(sidecar)
    return None


def with_subtitles(
    question: str,
    video: str,
    subtitles: str | None = None,
    video_fps: float = 2.0,
    video_maxlen: int = 128,
    max_chars: int | None = 2000,
) -> str:
    r"""``question`` preceded by the subtitle text aligned to the frames the host samples from ``video``.

    For chat: pass the returned text as the user message together with ``videos=[video]`` (same ``video_fps``
    / ``video_maxlen`` as the model's settings). Returns ``question`` unchanged when there are no subtitles.
    """
    cues = resolve_cues(video, subtitles)
    if not cues:
        return question
    text = subtitle_text(cues, probe_video(video).timestamps(video_fps, video_maxlen), max_chars=max_chars)
    return f"{text}\n{question}" if text else question
