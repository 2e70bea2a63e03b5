"""Video decoding in the host: the pre-training probe's frame sampling, and errors that name file and sample.

* :func:`host_sampler`: the frame indices LlamaFactory's ``BasePlugin._get_video_sample_indices`` picks, computed
  from a probe's recorded header (so the probe decodes exactly as far as training will).
* :func:`check_converted`: run by the data-loader patch (``host/data.py``) on every plugin stage's converted
  dataset, before any processor, model or Trainer: each sample's videos must decode as far as training samples them.
* :func:`patch_regularize_videos`: every mm_plugin class's ``_regularize_videos`` (how the host decodes videos, in
  the processors, the collators and ``sparc_align``'s frame loader) raises :class:`VideoDecodeError` naming the
  file and the samples that use it when decoding fails, whatever the cause, and when it returns fewer frames than
  the header let the host sample (a file cut short: the stock code would train on fewer frames, or crash later on
  a token / grid mismatch).
"""

from __future__ import annotations

import os
from fractions import Fraction
from types import ModuleType, SimpleNamespace
from typing import Any, Optional

from ..data.video_probe import (
    Sampler,
    VideoDecodeError,
    check_sample_videos,
    decode_facts,
    describe_samples,
    frames_expected,
    header_facts,
    judge,
    samples_of,
)


def _stream_from_facts(facts: dict[str, Any]) -> SimpleNamespace:
    time_base = Fraction(*facts["time_base"]) if facts.get("time_base") else None
    return SimpleNamespace(frames=facts["declared_frames"], duration=facts["stream_duration"], time_base=time_base)


def host_sampler(video_fps: float, video_maxlen: int) -> Sampler:
    r"""``facts -> indices`` with LlamaFactory's own ``_get_video_sample_indices`` (it reads only ``frames``,
    ``duration`` and ``time_base`` of the stream; ``tests/unit/test_host_contract.py`` checks that)."""
    from llamafactory.data.mm_plugin import BasePlugin

    sample = BasePlugin._get_video_sample_indices

    def sampler(facts: dict[str, Any]) -> list[int]:
        return [
            int(i) for i in sample(None, _stream_from_facts(facts), video_fps=video_fps, video_maxlen=video_maxlen)
        ]

    return sampler


def sample_videos(plugin: Any, videos: list, processor: Any) -> list:
    r"""The frames the host samples from each of ``videos``: the plugin's ``_regularize_videos`` with the processor's
    video keys (``video_max_pixels`` / ``video_min_pixels`` / ``video_fps`` / ``video_maxlen``, the host's defaults
    when unset), as LlamaFactory's own plugins call it."""
    return plugin._regularize_videos(
        videos,
        image_max_pixels=getattr(processor, "video_max_pixels", 256 * 256),
        image_min_pixels=getattr(processor, "video_min_pixels", 16 * 16),
        video_fps=getattr(processor, "video_fps", 2.0),
        video_maxlen=getattr(processor, "video_maxlen", 128),
    )["videos"]


def probe_disabled() -> bool:
    return os.environ.get("LLAMAFACTORY_VIDEO_PROBE", "").lower() in ("0", "off", "false", "no")


def check_converted(merged: Any, model_args: Any, split: str, mode: str = "error") -> Any:
    r"""Probe the videos of a converted (``_videos`` / ``_sample_index`` / ``_dataset_name``) dataset, or dict of
    them; raise naming file, sample and video, or drop those samples (``mode='skip'``)."""
    from .._logging import get_logger

    if isinstance(merged, dict):
        return {name: check_converted(ds, model_args, f"{split}[{name}]", mode) for name, ds in merged.items()}
    names = getattr(merged, "column_names", None)
    if not names or not {"_videos", "_sample_index", "_dataset_name"} <= set(names):
        return merged  # streaming (no columns to read up front) or not converted by our loader patch
    rows = [
        (str(name), int(index), [v for v in (videos or []) if isinstance(v, str)])
        for name, index, videos in zip(merged["_dataset_name"], merged["_sample_index"], merged["_videos"])
    ]
    if probe_disabled():
        from ..data.video_probe import remember_samples

        remember_samples(rows)
        get_logger(__name__).warning_rank0("LLAMAFACTORY_VIDEO_PROBE=off: videos are not checked before training.")
        return merged
    sampler = host_sampler(float(model_args.video_fps), int(model_args.video_maxlen))
    drop = check_sample_videos(rows, sampler, split, mode=mode)
    if drop:
        merged = merged.select([i for i in range(len(rows)) if i not in drop])
    return merged


def _culprit(videos: list[Any], kwargs: dict[str, Any]) -> tuple[str, str]:
    r"""The first video of a failed call that the probe finds bad, with its reason."""
    sampler = host_sampler(float(kwargs.get("video_fps", 2.0)), int(kwargs.get("video_maxlen", 128)))
    paths = [str(v) for v in videos if isinstance(v, (str, os.PathLike))]
    for path in paths:
        kind, reason = judge(decode_facts(path), sampler)
        if kind:
            return path, reason
    return ", ".join(paths) or "(in-memory video)", ""


def _error(path: str, what: str) -> VideoDecodeError:
    samples = samples_of(path)
    return VideoDecodeError(
        f"Video {path} ({describe_samples(samples)}): {what}. Re-encode or remove it "
        "(`llamafactory-video check-data` finds every such file before training).",
        path=path,
        samples=samples,
    )


def wrap_regularize_videos(original: Any) -> Any:
    def _regularize_videos(self, videos, **kwargs):
        try:
            out = original(self, videos, **kwargs)
        except VideoDecodeError:
            raise
        except Exception as err:
            path, reason = _culprit(list(videos), kwargs)
            raise _error(
                path, f"decoding failed: {type(err).__name__}: {err}" + (f" ({reason})" if reason else "")
            ) from err
        results = out.get("videos") if isinstance(out, dict) else None
        if results is None:
            return out
        sampler: Optional[Sampler] = None
        for video, frames in zip(videos, results):
            if not isinstance(video, (str, os.PathLike)):
                continue
            sampler = sampler or host_sampler(
                float(kwargs.get("video_fps", 2.0)), int(kwargs.get("video_maxlen", 128))
            )
            facts = header_facts(str(video))
            need, why = frames_expected(facts, sampler)
            if len(frames) < need:
                raise _error(
                    str(video),
                    f"only {len(frames)} frames decoded, but training needs {need} ({why}); "
                    "the file is cut short or damaged",
                )
        return out

    _regularize_videos.__wrapped__ = original
    return _regularize_videos


def patch_regularize_videos(module: ModuleType) -> None:
    r"""Wrap ``_regularize_videos`` of every plugin class of ``llamafactory.data.mm_plugin`` that defines one."""
    for value in list(vars(module).values()):
        if isinstance(value, type) and "_regularize_videos" in vars(value):
            original = vars(value)["_regularize_videos"]
            if getattr(original, "__wrapped__", None) is not None:
                continue
            value._regularize_videos = wrap_regularize_videos(original)
