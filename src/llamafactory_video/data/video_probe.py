"""Can every video be decoded as far as training will read it? One probe for every stage and ``check-data``.

A container's header is not evidence: a faststart mp4 cut to 30 % still declares all its frames and its full
duration (its index sits at the front), an avi declares its frame count up front, a webm / mkv declares its
duration. So the probe decodes the video stream through to its end (LlamaFactory's ``_regularize_videos`` decodes
the whole stream too, keeping the sampled frames) and then compares what really decoded with what training needs:

* ``sampler`` given (training, or ``check-data --video-fps/--video-maxlen``): the frame indices LlamaFactory's
  ``_get_video_sample_indices`` picks from the header (:func:`llamafactory_video.host.video.host_sampler`); every
  one of them must decode. When the container declares no frame count (webm / mkv), the host takes the first
  ``video_maxlen`` frames: at least ``min(video_maxlen, declared duration x fps)`` must decode.
* no sampler (``check-data``'s default): all the frames the header declares (frame count, else duration x fps),
  within a 5 % / 2-frame tolerance.

:func:`decode_facts` (what decoded; independent of the run's keys) is cached per file, keyed by absolute path,
size and mtime: in memory for the run, and on disk under ``$LLAMAFACTORY_VIDEO_CACHE`` (default
``~/.cache/llamafactory_video``)/``video_probe`` so a later run reuses it (``LLAMAFACTORY_VIDEO_CACHE=off``: memory
only). :func:`probe_videos` probes many files in a thread pool (FFmpeg decodes outside the GIL) with a tqdm bar.

Standard library + PyAV only (``check-data`` and the stages import it; LlamaFactory is not needed here).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import threading
from collections.abc import Iterable
from typing import Any, Callable, Optional

PROBE_VERSION = 1
"""Bump when :func:`decode_facts` changes what it records: older on-disk entries are then ignored."""

MAX_LISTED = 20

Sampler = Callable[[dict[str, Any]], list[int]]
"""``facts -> frame indices training decodes`` (see :func:`llamafactory_video.host.video.host_sampler`)."""


class VideoDecodeError(ValueError):
    r"""A video that cannot be read as far as training needs; ``path`` is the file, ``samples`` who uses it."""

    def __init__(self, message: str, path: str = "", samples: Optional[list[tuple[str, int]]] = None) -> None:
        super().__init__(message)
        self.path = path
        self.samples = list(samples or [])


# ----------------------------------------------------------------------------------------------------------------
# Decoding (cached)
# ----------------------------------------------------------------------------------------------------------------

_MEMORY: dict[tuple, dict[str, Any]] = {}
_LOCK = threading.Lock()


def cache_dir() -> Optional[str]:
    r"""The on-disk cache folder, or ``None`` when disabled (``LLAMAFACTORY_VIDEO_CACHE=off``)."""
    root = os.environ.get("LLAMAFACTORY_VIDEO_CACHE", "")
    if root.lower() in ("0", "off", "false", "none"):
        return None
    root = root or os.path.join(os.path.expanduser("~"), ".cache", "llamafactory_video")
    return os.path.join(root, "video_probe")


def _file_key(path: str, max_frames: int) -> Optional[tuple]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_size, st.st_mtime_ns, max_frames, PROBE_VERSION)


def _disk_path(key: tuple) -> Optional[str]:
    folder = cache_dir()
    if folder is None:
        return None
    return os.path.join(folder, hashlib.sha1(repr(key).encode("utf-8")).hexdigest() + ".json")


def _disk_read(key: tuple) -> Optional[dict[str, Any]]:
    path = _disk_path(key)
    if path is None or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return None
    return entry.get("facts") if entry.get("key") == list(key) else None


def _disk_write(key: tuple, facts: dict[str, Any]) -> None:
    path = _disk_path(key)
    if path is None:
        return
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"key": list(key), "facts": facts}, f)
        os.replace(tmp, path)
    except OSError:  # a read-only home: the memory cache still works
        try:
            os.remove(tmp)
        except OSError:
            pass


def header_facts(path: str) -> dict[str, Any]:
    r"""The header part of :func:`decode_facts` (no frame decoded), cached in memory, for training-time checks."""
    key = _file_key(path, -1)
    with _LOCK:
        cached = _MEMORY.get(key) if key is not None else None
    if cached is not None:
        return cached
    facts = _decode(path, -1)
    if key is not None:
        with _LOCK:
            _MEMORY[key] = facts
    return facts


def clear_memory_cache() -> None:
    with _LOCK:
        _MEMORY.clear()


def _decode(path: str, max_frames: int) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "path": path,
        "status": "ok",  # ok | missing | empty | unopenable | no_stream | error
        "error": "",
        "decoded": 0,
        "declared_frames": 0,
        "stream_duration": None,  # stream.duration (time_base units)
        "time_base": None,  # [num, den]
        "duration": None,  # seconds, stream then container
        "fps": None,
        "width": None,
        "height": None,
        "codec": None,
        "complete": True,  # False when max_frames stopped decoding early
    }
    if not os.path.exists(path):
        facts.update(status="missing", error="missing")
        return facts
    if not os.path.isfile(path):
        facts.update(status="missing", error="not a file")
        return facts
    if os.path.getsize(path) == 0:
        facts.update(status="empty", error="empty file (0 bytes)")
        return facts

    import av

    try:
        container = av.open(path, "r")
    except Exception as err:  # noqa: BLE001 - any failure to open is the finding
        facts.update(status="unopenable", error=f"cannot open: {type(err).__name__}: {err}")
        return facts
    try:
        streams = container.streams.video
        if not streams or streams[0].codec_context is None:
            facts.update(status="no_stream", error="no decodable video stream")
            return facts
        stream = streams[0]
        # one decoding thread: files are probed in parallel by probe_videos' pool already, and the probe decodes
        # damaged files on purpose, where FFmpeg's frame threads are the least trodden path (a hang or an abort
        # there would take the whole check, or a training rank, down with it)
        stream.thread_type = "SLICE"
        stream.thread_count = 1
        facts["declared_frames"] = int(stream.frames or 0)
        facts["codec"] = stream.codec_context.name
        facts["fps"] = float(stream.average_rate) if stream.average_rate else None
        facts["width"] = stream.codec_context.width or None
        facts["height"] = stream.codec_context.height or None
        if stream.time_base is not None:
            facts["time_base"] = [stream.time_base.numerator, stream.time_base.denominator]
        if stream.duration is not None and stream.time_base is not None:
            facts["stream_duration"] = int(stream.duration)
            facts["duration"] = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            facts["duration"] = container.duration / 1_000_000
        if max_frames < 0:  # header only
            facts["complete"] = False
            return facts
        frames = 0
        try:
            for frame in container.decode(stream):
                if frames == 0:
                    facts["width"], facts["height"] = frame.width, frame.height
                frames += 1
                if max_frames and frames >= max_frames:
                    facts["complete"] = False
                    break
        except Exception as err:  # noqa: BLE001 - the decoder's error is the finding
            facts.update(decoded=frames, status="error", error=f"{type(err).__name__}: {err}")
            return facts
        facts["decoded"] = frames
        return facts
    except Exception as err:  # noqa: BLE001 - a broken header can fail anywhere
        facts.update(status="unopenable", error=f"cannot read: {type(err).__name__}: {err}")
        return facts
    finally:
        container.close()


def decode_facts(path: str, max_frames: int = 0) -> dict[str, Any]:
    r"""What decoding ``path`` found (cached in memory and on disk per path + size + mtime); see :func:`_decode`.

    ``max_frames > 0`` stops after that many frames (a quicker, weaker check).
    """
    key = _file_key(path, max_frames)
    if key is None:
        return _decode(path, max_frames)
    with _LOCK:
        cached = _MEMORY.get(key)
    if cached is not None:
        return dict(cached, path=path)
    facts = _disk_read(key)
    if facts is None:
        facts = _decode(path, max_frames)
        _disk_write(key, facts)
    with _LOCK:
        _MEMORY[key] = facts
    return dict(facts, path=path)


# ----------------------------------------------------------------------------------------------------------------
# Judging: does what decoded cover what training needs?
# ----------------------------------------------------------------------------------------------------------------


def _tolerance(n: int) -> int:
    return max(2, n // 20)


def declared_estimate(facts: dict[str, Any]) -> int:
    r"""Frames the header promises: its frame count, else duration x fps (0 when it declares neither)."""
    if facts["declared_frames"]:
        return int(facts["declared_frames"])
    if facts["duration"] and facts["fps"]:
        return int(math.floor(facts["duration"] * facts["fps"]))
    return 0


def frames_needed(facts: dict[str, Any], sampler: Optional[Sampler] = None) -> tuple[int, str]:
    r"""``(frames that must decode, why)`` for a video whose header ``facts`` describe."""
    promised = declared_estimate(facts)
    if sampler is None:
        if not promised:
            return 1, "at least one frame"
        need = max(1, promised - _tolerance(promised))
        if facts["declared_frames"]:
            return need, f"the {promised} frames its header declares, tolerance {promised - need}"
        return (
            need,
            f"~{promised} frames for the {facts['duration']:.2f} s its header declares, tolerance {promised - need}",
        )
    indices = [int(i) for i in sampler(facts)]
    last = max(indices) + 1 if indices else 1
    if facts["declared_frames"]:
        return last, f"LlamaFactory samples {len(indices)} frames up to frame #{last - 1} of the {promised} declared"
    # no frame count in the header (webm / mkv): the host takes the first `video_maxlen` frames
    if promised:
        need = max(1, min(last, promised - _tolerance(promised)))
        return need, (
            f"LlamaFactory takes the first {len(indices)} frames and the header declares {facts['duration']:.2f} s "
            f"(~{promised} frames)"
        )
    return 1, "at least one frame"


def frames_expected(facts: dict[str, Any], sampler: Sampler) -> tuple[int, str]:
    r"""``(frames the host's decoding loop must return, why)``: one per sampled index (header with a frame count),
    else the first ``video_maxlen`` frames as far as the declared duration reaches."""
    need, why = frames_needed(facts, sampler)
    if facts["declared_frames"]:
        return len(set(sampler(facts))), why
    return need, why


def judge(facts: dict[str, Any], sampler: Optional[Sampler] = None) -> tuple[str, str]:
    r"""``(kind, reason)``; ``kind`` is ``""`` when the video is fine, else ``missing_video``, ``empty_video`` or
    ``undecodable_video`` (check-data's kinds)."""
    status = facts["status"]
    if status == "missing":
        return "missing_video", facts["error"]
    if status == "empty":
        return "empty_video", facts["error"]
    if status in ("unopenable", "no_stream"):
        return "undecodable_video", facts["error"]
    try:
        need, why = frames_needed(facts, sampler)
    except Exception as err:  # noqa: BLE001 - the host's sampling would fail the same way in training
        return "undecodable_video", f"LlamaFactory cannot sample frames from its header: {type(err).__name__}: {err}"
    if status == "error":  # LlamaFactory decodes the whole stream: an error anywhere stops training
        return "undecodable_video", f"decoding fails after {facts['decoded']} frames ({why}): {facts['error']}"
    if facts["decoded"] == 0:
        return "undecodable_video", "no frame decodes"
    if facts["complete"] and facts["decoded"] < need:
        return "undecodable_video", (
            f"cut short: only {facts['decoded']} frames decode, but training needs {need} ({why})"
        )
    return "", ""


def probe_video(path: str, max_frames: int = 0, sampler: Optional[Sampler] = None) -> dict[str, Any]:
    r"""``{"path", "ok", "kind", "reason", "frames", "duration", "fps", "width", "height", "codec"}`` of one video."""
    facts = decode_facts(path, max_frames)
    kind, reason = judge(facts, sampler)
    duration = facts["duration"]
    if duration is None and facts["fps"] and facts["complete"] and facts["decoded"]:
        duration = facts["decoded"] / facts["fps"]
    return {
        "path": path,
        "ok": not kind,
        "kind": kind,
        "reason": reason,
        "frames": facts["decoded"],
        "duration": duration,
        "fps": facts["fps"],
        "width": facts["width"],
        "height": facts["height"],
        "codec": facts["codec"],
    }


def default_workers() -> int:
    env = os.environ.get("LLAMAFACTORY_VIDEO_PROBE_WORKERS")
    if env:
        return max(1, int(env))
    return max(1, min(8, os.cpu_count() or 1))


def probe_videos(
    paths: Iterable[str],
    workers: int = 0,
    max_frames: int = 0,
    progress: bool = True,
    sampler: Optional[Sampler] = None,
    desc: str = "Decoding videos",
) -> dict[str, dict[str, Any]]:
    r"""Probe every distinct path once, ``workers`` threads at a time (0: :func:`default_workers`)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    unique = list(dict.fromkeys(paths))
    workers = workers or default_workers()
    results: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(unique), desc=desc, unit="video", disable=not progress or not unique, file=sys.stderr)
    try:
        if workers <= 1 or len(unique) <= 1:
            for path in unique:
                results[path] = probe_video(path, max_frames, sampler)
                bar.update()
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(unique))) as pool:
                for info in pool.map(lambda p: probe_video(p, max_frames, sampler), unique):
                    results[info["path"]] = info
                    bar.update()
    finally:
        bar.close()
    return results


# ----------------------------------------------------------------------------------------------------------------
# Samples: which rows use which video (for errors that name the sample)
# ----------------------------------------------------------------------------------------------------------------

_SAMPLES_OF: dict[str, list[tuple[str, int]]] = {}
"""Video path -> ``[(dataset file, sample index), ...]`` of the data loaded in this process (the training-time
error names the samples from here when a batch does not carry them)."""


def remember_samples(rows: Iterable[tuple[str, int, list[str]]]) -> None:
    for dataset, index, videos in rows:
        for video in videos:
            entry = _SAMPLES_OF.setdefault(video, [])
            if (dataset, index) not in entry:
                entry.append((dataset, index))


def samples_of(path: str) -> list[tuple[str, int]]:
    return list(_SAMPLES_OF.get(path, []))


def describe_samples(samples: list[tuple[str, int]], limit: int = 5) -> str:
    if not samples:
        return "sample unknown (data loaded from tokenized_path?)"
    by_dataset: dict[str, list[int]] = {}
    for dataset, index in samples:
        by_dataset.setdefault(dataset, []).append(index)
    parts = []
    for dataset, indices in by_dataset.items():
        shown = ", ".join(map(str, indices[:limit])) + (" ..." if len(indices) > limit else "")
        parts.append(f"dataset `{dataset}` sample{'s' if len(indices) > 1 else ''} {shown}")
    return "; ".join(parts)


def check_sample_videos(
    rows: list[tuple[str, int, list[str]]],
    sampler: Optional[Sampler],
    split: str,
    mode: str = "error",
    hint: str = "",
    progress: Optional[bool] = None,
) -> set[int]:
    r"""Probe the videos of ``rows`` (``(dataset file, sample index, video paths)``); raise a ``ValueError`` listing
    every sample whose video cannot be decoded as far as training needs (``mode='error'``), or return the positions
    of those rows in ``rows`` (``'skip'``: the caller drops them)."""
    from .._logging import get_logger

    logger = get_logger(__name__)
    remember_samples(rows)
    paths = [v for _, _, videos in rows for v in videos if isinstance(v, str)]
    unique = list(dict.fromkeys(paths))
    if not unique:
        return set()
    show = progress if progress is not None else len(unique) >= 16
    probes = probe_videos(unique, progress=show, sampler=sampler, desc=f"Checking {split} videos")
    bad_rows: list[tuple[int, str, int, str, str]] = []
    for position, (dataset, index, videos) in enumerate(rows):
        for v in videos:
            info = probes.get(v) if isinstance(v, str) else None
            if info is not None and not info["ok"]:
                bad_rows.append((position, dataset, index, v, info["reason"]))
                break
    if not bad_rows:
        logger.info_rank0(f"All {len(unique)} {split} videos decode as far as training samples them.")
        return set()
    listed = "\n".join(
        f"  - dataset `{dataset}` sample {index}: video {path}: {reason}"
        for _, dataset, index, path, reason in bad_rows[:MAX_LISTED]
    )
    more = f"\n  ... and {len(bad_rows) - MAX_LISTED} more" if len(bad_rows) > MAX_LISTED else ""
    if mode == "skip":
        logger.warning_rank0(
            f"Skipping {len(bad_rows)} of {len(rows)} {split} samples whose video cannot be decoded:\n{listed}{more}"
        )
        return {position for position, *_ in bad_rows}
    raise VideoDecodeError(
        f"{len(bad_rows)} of {len(rows)} {split} samples have a video that cannot be decoded as far as training "
        f"samples it (checked before training):\n{listed}{more}\n"
        f"{hint or 'Re-encode or remove these videos (`llamafactory-video check-data` lists them all).'}",
        path=bad_rows[0][3],
        samples=[(dataset, index) for _, dataset, index, _, _ in bad_rows],
    )
