"""The host's video reading path, for every family's mm_plugin: our frame sampler and the frame cache.

LlamaFactory's ``_regularize_videos`` (``MMPluginMixin``, ``Qwen2VLPlugin``, ``Gemma4Plugin``; every other family
inherits one of them) reads a file as: ``av.open(video, "r")``, ``self._get_video_sample_indices(stream, **kw)``,
``container.seek(0)``, ``for i, frame in enumerate(container.decode(stream)): if i in indices:
frame.to_image()``. Two patches, both leaving the host's own code to compute everything else (durations, fps,
timestamps, the resize):

* :func:`patch_video_reading`: the module's ``av`` name becomes a proxy whose ``open`` returns a container that
  remembers the indices the host asked for (``_get_video_sample_indices`` is wrapped to tell it) and whose
  ``decode`` yields, in the host's numbering, the wanted frames read by
  :func:`llamafactory_video.data.frame_sampler.read_frames_from` (seeking, skipping non-reference frames) and
  cheap stand-ins for the others (the host never converts those). Any file the sampler cannot identify frames in,
  and any decoding error, falls back to the host's own decode-everything loop on a fresh container, so errors and
  frames stay the host's. ``video_backend: host`` (``LLAMAFACTORY_VIDEO_BACKEND=host``) turns the sampler off;
  ``video_backend: decord`` reads the same indices with decord's ``get_batch`` instead.
* :func:`patch_frame_cache`: every ``_regularize_videos`` is wrapped (outermost) to serve a file's output from
  :mod:`llamafactory_video.data.frame_cache` when ``video_frame_cache`` is set.
* :func:`patch_model_loader`: ``load_tokenizer`` exports the model keys ``video_backend`` / ``video_frame_cache``
  to the environment, where data-loader workers (forked or spawned) and torchrun ranks read them.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from types import ModuleType
from typing import Any, Optional


BACKEND_ENV = "LLAMAFACTORY_VIDEO_BACKEND"
BACKENDS = ("pyav", "host", "decord")
DEFAULT_BACKEND = "pyav"
_LOCAL = threading.local()
_OPEN: "weakref.WeakSet[SamplingContainer]" = weakref.WeakSet()  # every thread's, for the exit hook
_LOGGED: set[str] = set()


def current_backend() -> str:
    value = os.environ.get(BACKEND_ENV, "").strip().lower() or DEFAULT_BACKEND
    if value not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={value!r}: choose one of {', '.join(BACKENDS)}")
    return value


def _log_once(key: str, message: str) -> None:
    if key in _LOGGED:
        return
    _LOGGED.add(key)
    from .._logging import get_logger

    get_logger("llamafactory_video.frame_reader").info(message)


class _Skipped:
    r"""A frame the host does not keep: never converted (the host calls ``to_image`` only on kept frames)."""

    __slots__ = ()

    def to_image(self):  # pragma: no cover - reaching it would mean the host's numbering changed
        raise RuntimeError("llamafactory-video frame sampler: the host converted a frame it did not sample")


class _Kept:
    __slots__ = ("image",)

    def __init__(self, image: Any):
        self.image = image

    def to_image(self) -> Any:
        return self.image


class SamplingContainer:
    r"""A PyAV input container whose ``decode(video stream)`` yields the host's frames by seeking."""

    def __init__(self, real_av: ModuleType, path: str, real: Any):
        self._av = real_av
        self._path = path
        self._real = real
        self._indices: Optional[list[int]] = None
        self._done = False
        self._pid = os.getpid()
        kept = []
        for container in getattr(_LOCAL, "containers", []):
            if container._pid != self._pid:
                continue  # inherited through fork (loader / cache-frames workers): the parent's; never closed here
            if container._done:
                # the host never closes the containers of _regularize_videos; PyAV's own reference cycles then keep
                # each one's native buffers until the cyclic GC runs, which our sampler (few Python objects per
                # call) triggers rarely: measured +200 MiB of dead containers. A container whose decoding finished
                # is closed when the next one opens (the host reads only stream headers in between).
                container._real.close()
            elif container._real is not real:
                kept.append(container)
        _LOCAL.containers = kept[-7:] + [self]
        _OPEN.add(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        _LOCAL.containers = [c for c in getattr(_LOCAL, "containers", []) if c is not self]
        _OPEN.discard(self)
        self._real.close()

    def seek(self, *args, **kwargs):
        if self._indices is not None and args and args[0] == 0 and not kwargs:
            return None  # the host's seek(0) before decoding: we seek ourselves
        return self._real.seek(*args, **kwargs)

    def decode(self, *args, **kwargs):
        stream = args[0] if len(args) == 1 and not kwargs else None
        if self._indices is None or stream is None or getattr(stream, "type", None) != "video":
            return self._real.decode(*args, **kwargs)
        return self._sampled(stream)

    def _sampled(self, stream: Any):
        from ..data.frame_sampler import NotSeekable, read_frames_decord, read_frames_from

        indices = self._indices
        try:
            if current_backend() == "decord":
                frames = read_frames_decord(self._path, indices)
            else:
                frames = read_frames_from(self._real, stream, indices)
        except Exception as err:  # noqa: BLE001 - anything unusual: the host's own loop decides
            reason = f"{type(err).__name__}: {err}" if not isinstance(err, NotSeekable) else str(err)
            _log_once(
                f"fallback:{self._path}",
                f"frame sampler: {self._path} is decoded from its start ({reason}).",
            )
            yield from self._host_decode()
            return
        if frames:
            skipped = _Skipped()
            for index in range(max(frames) + 1):
                frame = frames.get(index)
                yield _Kept(frame) if frame is not None else skipped
        self._done = True

    def _host_decode(self):
        container = self._av.open(self._path, "r")
        try:
            stream = next(s for s in container.streams if s.type == "video")
            container.seek(0)
            yield from container.decode(stream)
        finally:
            container.close()


@atexit.register
def _close_open_containers() -> None:
    r"""Close this process's containers that the host left open while the interpreter is whole, instead of leaving
    them to FFmpeg teardown during interpreter finalisation."""
    for container in list(_OPEN):
        if container._pid == os.getpid():
            try:
                container._real.close()
            except Exception:  # noqa: BLE001 - exiting anyway
                pass


class _AvProxy:
    r"""Stands for the ``av`` module inside ``llamafactory.data.mm_plugin``: only ``open`` differs."""

    def __init__(self, real_av: ModuleType):
        self.__dict__["_real_av"] = real_av

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_real_av"], name)

    def open(self, file: Any, mode: str = "r", *args, **kwargs) -> Any:
        real_av = self.__dict__["_real_av"]
        container = real_av.open(file, mode, *args, **kwargs)
        if mode != "r" or not isinstance(file, (str, os.PathLike)) or current_backend() == "host":
            return container
        return SamplingContainer(real_av, os.fspath(file), container)


def _wrap_sample_indices(original: Any) -> Any:
    def _get_video_sample_indices(self, video_stream, *args, **kwargs):
        indices = original(self, video_stream, *args, **kwargs)
        real = getattr(video_stream, "container", None)
        for container in getattr(_LOCAL, "containers", []):
            if container._real is real:
                container._indices = [int(i) for i in indices]
        return indices

    _get_video_sample_indices.__wrapped__ = original
    return _get_video_sample_indices


def patch_video_reading(module: ModuleType) -> None:
    r"""Install the sampling ``av`` proxy and the index hook into ``llamafactory.data.mm_plugin``."""
    real_av = getattr(module, "av", None)
    if real_av is None or isinstance(real_av, _AvProxy):
        return  # PyAV not installed: the host cannot read video files either
    module.av = _AvProxy(real_av)
    mixin = module.MMPluginMixin
    original = vars(mixin)["_get_video_sample_indices"]
    if getattr(original, "__wrapped__", None) is None:
        mixin._get_video_sample_indices = _wrap_sample_indices(original)


# ------------------------------------------------------------------------------------------------ frame cache
def _merge(outputs: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    keys = list(outputs[0])
    merged: dict[str, Any] = {key: [] for key in keys}
    for out in outputs:
        if list(out) != keys:
            return None
        for key in keys:
            value = out[key]
            if not isinstance(value, list) or len(value) > 1:
                return None
            merged[key].extend(value)
    return merged


def wrap_cached(original: Any) -> Any:
    def _regularize_videos(self, videos, **kwargs):
        from ..data import frame_cache

        directory = frame_cache.cache_dir()
        if directory is None or not videos:
            return original(self, videos, **kwargs)
        outputs = []
        for video in videos:
            is_file = isinstance(video, (str, os.PathLike))
            # keyed by the plugin's own class: subclasses that inherit _regularize_videos may resize differently
            key = frame_cache.entry_key(type(self).__qualname__, os.fspath(video), kwargs) if is_file else None
            hit = frame_cache.load(directory, key, os.fspath(video)) if key else None
            if hit is None:
                hit = original(self, [video], **kwargs)
                if key:
                    frame_cache.store(directory, key, os.fspath(video), hit)
            outputs.append(hit)
        merged = _merge(outputs)
        return merged if merged is not None else original(self, videos, **kwargs)

    _regularize_videos.__frame_cache__ = original
    _regularize_videos.__wrapped__ = original  # inspect.unwrap reaches the host's own method through both wrappers
    return _regularize_videos


def patch_frame_cache(module: ModuleType) -> None:
    r"""Wrap every plugin class's own ``_regularize_videos`` (after the decode-error patch: outermost)."""
    for value in list(vars(module).values()):
        if isinstance(value, type) and "_regularize_videos" in vars(value):
            current = vars(value)["_regularize_videos"]
            if getattr(current, "__frame_cache__", None) is None:
                value._regularize_videos = wrap_cached(current)


# ------------------------------------------------------------------------------------------------ model keys
def export_model_keys(model_args: Any) -> None:
    r"""``video_backend`` / ``video_frame_cache`` of ``model_args`` -> the environment (read by every process)."""
    from ..data.frame_cache import ENV

    backend = getattr(model_args, "video_backend", None)
    if backend:
        os.environ[BACKEND_ENV] = str(backend)
    cache = getattr(model_args, "video_frame_cache", None)
    if cache:
        os.environ[ENV] = os.path.abspath(os.path.expanduser(str(cache)))
        _log_once("cache", f"frame cache: {os.environ[ENV]}")


def patch_model_loader(module: ModuleType) -> None:
    original = module.load_tokenizer
    if getattr(original, "__exports_video_keys__", False):
        return

    def load_tokenizer(model_args):
        export_model_keys(model_args)
        return original(model_args)

    load_tokenizer.__wrapped__ = original
    load_tokenizer.__exports_video_keys__ = True
    module.load_tokenizer = load_tokenizer
