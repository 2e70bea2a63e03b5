"""Our frame sampler: the host's frames (same indices, same pixels), decoded by seeking instead of from frame 0.

LlamaFactory's ``_regularize_videos`` numbers the frames PyAV's decoder returns from the start of the file
(presentation order) and keeps those whose number is in ``_get_video_sample_indices``. :func:`read_frames_pyav`
returns exactly those frames, decoded another way:

1. **frame table** (:func:`frame_table`): the stream's packets are read once without decoding (demuxing costs
   a few ms per minute of video); frame ``i`` is the packet with the ``i``-th smallest ``pts``, keyframes are
   known from the packet flags;
2. **seek or decode through** (:func:`plan_seeks`): for each wanted frame, in order, the decoder seeks to the
   last keyframe at or before it when that keyframe lies more than :data:`SEEK_MIN_GAP` frames past the previous
   wanted frame; otherwise decoding continues (it passes that keyframe anyway);
3. **skip what no kept frame needs**: while decoding towards a wanted frame the decoder drops the packets that
   are neither wanted nor referenced by later frames (FFmpeg's ``skip_frame = NONREF``: B-frames that are not
   references in h264 / hevc); wanted frames decode with the default setting. Colour conversion
   (``to_image``) runs only on kept frames;
4. **threads**: the decoder uses FFmpeg's frame / slice threads when the process has spare cores
   (:func:`decoder_threads`).

Frames are identified by ``pts``, never by counting. Whenever the file does not fit that model (a packet without
``pts``, duplicate ``pts``, a stream not starting on a keyframe, a decoded frame whose ``pts`` is not in the
table, a wanted frame that never comes out) :class:`NotSeekable` is raised and the caller falls back to the
host's own decode-everything path, so a file is never given other frames than the host would give it.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence


class NotSeekable(Exception):
    r"""The file does not fit the frame-table model; decode it the host's way instead."""


@dataclass(frozen=True)
class FrameTable:
    r"""``pts`` of every frame in presentation order, and the ``pts`` of the keyframes (sorted)."""

    pts: tuple[int, ...]
    keyframe_pts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.pts)


def frame_table(container: Any, stream: Any) -> FrameTable:
    r"""Demux ``stream`` once (no decoding) into a :class:`FrameTable`; :class:`NotSeekable` when frames cannot be
    identified by ``pts``. Leaves the container at its end: the caller seeks before decoding."""
    pts: list[int] = []
    keys: list[int] = []
    first = True
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the demuxer's final flush packet
        if packet.pts is None:
            raise NotSeekable("a packet has no pts")
        if first and not packet.is_keyframe:
            raise NotSeekable("the stream does not start on a keyframe")
        first = False
        pts.append(int(packet.pts))
        if packet.is_keyframe:
            keys.append(int(packet.pts))
    ordered = sorted(pts)
    if len(set(ordered)) != len(ordered):
        raise NotSeekable("duplicate pts")
    return FrameTable(pts=tuple(ordered), keyframe_pts=tuple(sorted(set(keys))))


#: seek only when it skips more than this many frames (a seek flushes the decoder and re-reads the demuxer)
SEEK_MIN_GAP = 8


def plan_seeks(
    table: FrameTable, indices: Sequence[int], min_gap: int = SEEK_MIN_GAP
) -> list[tuple[int, Optional[int]]]:
    r"""``[(index, keyframe pts to seek to, or None to keep decoding)]`` for the wanted ``indices`` (sorted,
    those past the end dropped). The first wanted frame seeks to its keyframe; a later one seeks to its keyframe
    only when that keyframe lies more than ``min_gap`` frames past the previous wanted frame (decoding through
    would decode those frames for nothing); otherwise decoding continues.

    >>> plan_seeks(FrameTable(pts=tuple(range(40)), keyframe_pts=(0, 10, 20, 30)), [1, 2, 15, 19, 35], min_gap=3)
    [(1, 0), (2, None), (15, 10), (19, None), (35, 30)]
    >>> plan_seeks(FrameTable(pts=tuple(range(40)), keyframe_pts=(0, 10, 20, 30)), [8, 12], min_gap=3)
    [(8, 0), (12, None)]
    """
    plan: list[tuple[int, Optional[int]]] = []
    previous: Optional[int] = None
    for index in sorted(set(int(i) for i in indices)):
        if index < 0 or index >= len(table):
            continue
        target = table.pts[index]
        key = table.keyframe_pts[bisect.bisect_right(table.keyframe_pts, target) - 1]
        key_index = bisect.bisect_left(table.pts, key)
        if previous is None or key_index - previous > min_gap:
            plan.append((index, key))
        else:
            plan.append((index, None))
        previous = index
    return plan


def decoder_threads() -> int:
    r"""Decoder threads for this process: the cores it may use divided among the data loader's workers, when
    that leaves at least 4 (FFmpeg's frame threads add latency and contend for the cores otherwise: measured
    slower on a busy 2-core machine), else 1; at most 8. ``LLAMAFACTORY_VIDEO_DECODE_THREADS`` overrides."""
    forced = os.environ.get("LLAMAFACTORY_VIDEO_DECODE_THREADS")
    if forced:
        return max(1, int(forced))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    workers = 1
    try:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        if info is not None:
            workers = max(1, int(info.num_workers))
    except ImportError:
        pass
    spare = cores // workers
    return min(8, spare) if spare >= 4 else 1


def read_frames_pyav(path: str, indices: Sequence[int], threads: Optional[int] = None) -> dict[int, Any]:
    r"""``{index: PIL RGB image}`` of the wanted frame ``indices`` of ``path`` (frame numbers as the host counts
    them), each the image ``VideoFrame.to_image()`` gives for that frame in the host's decode-everything loop.
    Indices past the last frame are absent. Raises :class:`NotSeekable` (see the module docstring); decoding
    errors propagate as PyAV raises them."""
    import av

    with av.open(path, "r") as container:
        stream = next(s for s in container.streams if s.type == "video")
        return read_frames_from(container, stream, indices, threads)


def read_frames_from(
    container: Any, stream: Any, indices: Sequence[int], threads: Optional[int] = None, stats: Optional[dict] = None
) -> dict:
    r""":func:`read_frames_pyav` on an open PyAV input ``container`` whose ``stream`` has not been decoded yet.
    ``stats``, when given, receives ``frames`` (in the file), ``packets_sent`` (to the decoder), ``frames_out``
    (that came out of it: the rest were dropped as non-reference), ``sent_as_nonref`` and ``seeks``."""
    threads = decoder_threads() if threads is None else threads
    counts = {"frames": 0, "packets_sent": 0, "frames_out": 0, "sent_as_nonref": 0, "seeks": 0, "threads": threads}
    table = frame_table(container, stream)
    counts["frames"] = len(table)
    plan = plan_seeks(table, indices)
    if stats is not None:
        stats.update(counts)
        counts = stats
    if not plan:
        return {}
    if threads > 1:
        stream.thread_type = "AUTO"
        stream.thread_count = threads
    context = stream.codec_context
    wanted = {table.pts[index]: index for index, _ in plan}
    known = set(table.pts)
    out: dict[int, Any] = {}

    def take(frames: Any) -> None:
        for frame in frames:
            counts["frames_out"] += 1
            if frame.pts not in known:
                raise NotSeekable(f"decoded a frame with pts {frame.pts} that no packet announced")
            hit = wanted.get(frame.pts)
            if hit is not None and hit not in out:
                out[hit] = frame.to_image()

    packets = None
    try:
        for index, seek_to in plan:
            if seek_to is not None:
                container.seek(seek_to, stream=stream, backward=True, any_frame=False)
                counts["seeks"] += 1
                packets = iter(container.demux(stream))
            if index in out:
                continue  # already decoded on the way to an earlier target
            if packets is None:
                raise NotSeekable(f"frame {index} is wanted after the end of the file was reached")
            for packet in packets:
                if packet.size == 0:
                    break  # end of the file
                keep = packet.pts in wanted
                context.skip_frame = "DEFAULT" if keep else "NONREF"
                counts["packets_sent"] += 1
                counts["sent_as_nonref"] += not keep
                take(context.decode(packet))
                if index in out:
                    break
            if index not in out:  # end of the file: drain the decoder's reorder buffer
                context.skip_frame = "DEFAULT"
                take(context.decode(None))
                packets = None
                if index not in out:
                    raise NotSeekable(f"frame {index} (pts {table.pts[index]}) did not come out of the decoder")
    finally:
        context.skip_frame = "DEFAULT"
    return out


def read_frames_decord(path: str, indices: Sequence[int]) -> dict[int, Any]:
    r"""``{index: PIL RGB image}`` of the wanted ``indices`` read with decord's ``VideoReader.get_batch`` (its own
    FFmpeg and frame index; ``video_backend: decord``). Indices past decord's frame count are absent."""
    import decord
    from PIL import Image

    reader = decord.VideoReader(path, num_threads=decoder_threads())
    wanted = sorted({int(i) for i in indices if 0 <= int(i) < len(reader)})
    if not wanted:
        return {}
    batch = reader.get_batch(wanted).asnumpy()
    return {index: Image.fromarray(batch[j]) for j, index in enumerate(wanted)}
