"""Decode once per run: an on-disk cache of the frames the host's ``_regularize_videos`` returns for a video.

One entry per (the plugin's class, file, size, mtime, every keyword of the call: ``video_fps``, ``video_maxlen``,
``image_max_pixels``, ``image_min_pixels``): an uncompressed ``.npz`` (``np.savez``, loaded with
``allow_pickle=False``; never a pickle) holding

* ``frames``: ``uint8 (num_frames, height, width, 3)``: the frames at the processor's resolution, after the
  host's own resize (exactly what the host hands to the image processor);
* ``meta``: UTF-8 JSON (as a ``uint8`` array): the source's path / size / mtime and the call's other outputs for
  that video (``durations``, ``fps_per_video``, ``frames_indices``, ...).

Entries are written to a temporary file in the same directory, then renamed (atomic on POSIX), so every rank and
data-loader worker of a node can share one directory. A changed source (size or mtime) misses; an entry that does
not load, or does not match its source, is decoded again and rewritten. A cache directory that cannot be written
(read-only, full disk) logs ONE warning per process and the run goes on decoding.

The directory comes from the model key ``video_frame_cache`` (exported as ``LLAMAFACTORY_VIDEO_FRAME_CACHE`` so
that spawned workers and tools see it) or that environment variable; unset = no cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any, Optional

import numpy as np


ENV = "LLAMAFACTORY_VIDEO_FRAME_CACHE"
VERSION = 1
_STATE = {"write_warned": False, "writes_disabled": False}


def cache_dir() -> Optional[str]:
    r"""The active cache directory, or ``None`` when caching is off."""
    value = os.environ.get(ENV, "").strip()
    return os.path.abspath(os.path.expanduser(value)) if value else None


def entry_key(owner: str, path: str, kwargs: dict[str, Any]) -> Optional[str]:
    r"""Hex key of ``path`` decoded by plugin class ``owner`` with ``kwargs``; ``None`` if the file is missing or a
    keyword is not a plain value (then the call is not cached)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    plain = {}
    for name, value in sorted(kwargs.items()):
        if isinstance(value, (np.integer, np.floating)):
            value = value.item()
        if not isinstance(value, (int, float, str, bool, type(None))):
            return None
        plain[name] = value
    ident = [VERSION, owner, os.path.realpath(path), stat.st_size, stat.st_mtime_ns, plain]
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def entry_path(directory: str, key: str) -> str:
    return os.path.join(directory, key[:2], key + ".npz")


def _source_ident(path: str) -> Optional[list[Any]]:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [os.path.realpath(path), stat.st_size, stat.st_mtime_ns]


def load(directory: str, key: str, path: str) -> Optional[dict[str, Any]]:
    r"""The cached single-video output (``{"videos": [frames], other key: [value]}``) or ``None`` on a miss, a
    corrupt entry or one whose source changed."""
    file = entry_path(directory, key)
    if not os.path.isfile(file):
        return None
    try:
        with np.load(file, allow_pickle=False) as data:
            frames = np.asarray(data["frames"])
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
        if meta.get("version") != VERSION or meta.get("source") != _source_ident(path):
            return None
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[0] != meta["num_frames"]:
            return None
    except Exception:  # noqa: BLE001 - a truncated / corrupt entry is a miss; it is rewritten after decoding
        return None
    from PIL import Image

    out: dict[str, Any] = {}
    for name in meta["order"]:
        if name == "videos":
            out[name] = [[Image.fromarray(frame) for frame in frames]]
        else:
            out[name] = [meta["outputs"][name]] if name in meta["outputs"] else []
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool, type(None))):
        return value
    raise TypeError(f"not cacheable: {type(value).__name__}")


def encode_entry(out: dict[str, Any], path: str) -> Optional[tuple[np.ndarray, bytes]]:
    r"""``(frames, meta json)`` of a single-video ``_regularize_videos`` output, or ``None`` when it does not fit
    the format (frames of mixed sizes or modes, a value that is not plain data)."""
    videos = out.get("videos")
    if not isinstance(videos, list) or len(videos) != 1 or not videos[0]:
        return None
    frames = videos[0]
    if any(getattr(f, "mode", None) != "RGB" for f in frames) or len({f.size for f in frames}) != 1:
        return None
    outputs, empty = {}, []
    try:
        for name, value in out.items():
            if name == "videos":
                continue
            if not isinstance(value, list) or len(value) > 1:
                return None
            if value:
                outputs[name] = _jsonable(value[0])
            else:
                empty.append(name)  # e.g. Gemma4's fps_per_video, filled only for videos given as frames
    except TypeError:
        return None
    array = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])
    meta = {
        "version": VERSION,
        "source": _source_ident(path),
        "num_frames": len(frames),
        "outputs": outputs,
        "empty": empty,
        "order": list(out),
    }
    return array, json.dumps(meta).encode("utf-8")


def store(directory: str, key: str, path: str, out: dict[str, Any]) -> bool:
    r"""Write the entry atomically; ``False`` (and one warning per process) if the directory cannot be written."""
    if _STATE["writes_disabled"]:
        return False
    encoded = encode_entry(out, path)
    if encoded is None:
        return False
    frames, meta = encoded
    file = entry_path(directory, key)
    tmp = None
    try:
        os.makedirs(os.path.dirname(file), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=os.path.dirname(file))
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, frames=frames, meta=np.frombuffer(meta, dtype=np.uint8))
        os.replace(tmp, file)
        return True
    except OSError as err:
        if tmp is not None:
            try:
                os.remove(tmp)
            except OSError:
                pass
        _STATE["writes_disabled"] = True
        if not _STATE["write_warned"]:
            _STATE["write_warned"] = True
            from .._logging import get_logger

            get_logger(__name__).warning(
                f"Frame cache {directory} cannot be written ({type(err).__name__}: {err}); videos are decoded "
                "without caching for the rest of this process."
            )
        return False
