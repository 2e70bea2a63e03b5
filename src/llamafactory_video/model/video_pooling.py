r"""Video token pooling on a loaded model of a family that pools (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): one
configuration, applied in the three places that must agree (placeholders, features, positions).

:class:`VideoPooling` says how every slot of a video is pooled (slow / fast strides, strategy, mode). It is
applied

* to the **processor** (:func:`attach_to_processor`): the family's LlamaFactory mm_plugin then expands each
  ``<video>`` into the pooled number of placeholder tokens (``host/pooling.py`` asks the family layer how);
* to the **model** (:func:`install_on_model`): the vision tower's video features are pooled slot by slot and
  ``get_rope_index`` returns the pooled positions, for training, the host's collator and ``generate``, as the
  model's family (:mod:`~llamafactory_video.model.families`) computes them.

Three sources, in this order: the ``fastslow_ar`` stage's keys (its workflow applies them), the model key
``video_token_pool_stride`` (any stage, e.g. stock ``sft``), and a ``video_pooling.json`` saved beside an adapter
or a full model by a pooled run, so ``llamafactory-cli chat`` / ``api`` / ``predict`` of a trained model use the
pooling it was trained with without any key. A saved file is only used when it belongs to the weights beside it
(``artifacts.pooling_is_trusted``: its ``written_by`` record fingerprints them); a stale one, left by an earlier run
in a reused directory, is ignored with a warning.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .fastslow import POOL_MODES, STRATEGIES, slot_grids, slot_pattern


POOLING_FILE = "video_pooling.json"
PROCESSOR_ATTR = "video_token_pooling"
_INSTALLED_ATTR = "_lfv_video_pooling"


@dataclass(frozen=True)
class VideoPooling:
    slow_stride: int = 1
    fast_stride: int = 1
    strategy: str = "interleave"
    slow_ratio: float = 0.5
    mode: str = "average"

    def __post_init__(self) -> None:
        for name in ("slow_stride", "fast_stride"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.mode not in POOL_MODES:
            raise ValueError(f"mode must be one of {POOL_MODES}, got {self.mode!r}")
        if not 0.0 <= self.slow_ratio <= 1.0:
            raise ValueError(f"slow_ratio must be in [0, 1], got {self.slow_ratio!r}")

    @classmethod
    def uniform(cls, stride: int, mode: str = "average") -> VideoPooling:
        return cls(slow_stride=stride, fast_stride=stride, strategy="interleave", slow_ratio=0.5, mode=mode)

    @property
    def is_identity(self) -> bool:
        return self.slow_stride == 1 and self.fast_stride == 1

    def patterns(self, video_grid_thw: torch.Tensor | list) -> list[list[bool]]:
        r"""Slow (``True``) / fast slot pattern of every video of ``video_grid_thw`` ``(V, 3)``."""
        rows = video_grid_thw.tolist() if isinstance(video_grid_thw, torch.Tensor) else video_grid_thw
        return [slot_pattern(int(row[0]), self.strategy, self.slow_ratio) for row in rows]

    def grids(self, video_grid_thw: torch.Tensor | list, merge_size: int) -> list[list[tuple[int, int]]]:
        r"""Pooled merged grid ``(h', w')`` of every slot of every video."""
        return slot_grids(
            video_grid_thw, merge_size, self.patterns(video_grid_thw), self.slow_stride, self.fast_stride
        )

    def placeholder_counts(self, video_grid_thw: torch.Tensor | list, merge_size: int) -> list[int]:
        r"""Number of ``<|video_pad|>`` tokens per video."""
        return [sum(h * w for h, w in video) for video in self.grids(video_grid_thw, merge_size)]

    def describe(self) -> str:
        if self.slow_stride == self.fast_stride:
            return f"stride {self.slow_stride} ({self.mode})"
        return (
            f"slow stride {self.slow_stride} / fast stride {self.fast_stride}, {self.strategy}"
            f"{'' if self.strategy == 'interleave' else f' (slow ratio {self.slow_ratio})'}, {self.mode}"
        )

    def saving_line(self, merged_side: int, num_slots: int = 8, video_maxlen: int | None = None) -> str:
        r"""One line on the token saving for a video of ``num_slots`` slots of ``merged_side`` x ``merged_side``
        (height x width) merged tokens; given the run's ``video_maxlen``, the slots are those of a video sampled
        to that many frames (2 frames per slot)."""
        if video_maxlen is not None:
            num_slots = slots_for_frames(video_maxlen)
        grid = [[num_slots, merged_side * 2, merged_side * 2]]
        pooled = self.placeholder_counts(grid, 2)[0]
        stock = num_slots * merged_side * merged_side
        source = f" (video_maxlen {video_maxlen} frames)" if video_maxlen is not None else ""
        return (
            f"video token pooling {self.describe()}: a {num_slots}-slot video{source} of {merged_side}x{merged_side} "
            f"(HxW) tokens per slot costs {pooled} instead of {stock} tokens ({stock / max(pooled, 1):.1f}x fewer)"
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str) -> str:
        path = os.path.join(directory, POOLING_FILE)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=2)
        return path

    @classmethod
    def load(cls, path: str) -> VideoPooling:
        from ..artifacts import strip_written_by

        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        try:
            return cls(**strip_written_by(data))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: not a valid {POOLING_FILE}: {err}") from err


_WARNED: set[str] = set()


def saved_pooling(model_args: Any) -> tuple[VideoPooling | None, str | None]:
    r"""A ``video_pooling.json`` of the last adapter in ``adapter_name_or_path``, else of ``model_name_or_path``,
    that belongs to the weights beside it (one that does not is skipped with a warning)."""
    from ..artifacts import pooling_is_trusted

    candidates = list(reversed(list(getattr(model_args, "adapter_name_or_path", None) or [])))
    candidates.append(getattr(model_args, "model_name_or_path", None))
    for directory in candidates:
        if directory and os.path.isfile(os.path.join(directory, POOLING_FILE)):
            path = os.path.join(directory, POOLING_FILE)
            trusted, why = pooling_is_trusted(path)
            if not trusted:
                if path not in _WARNED:
                    _WARNED.add(path)
                    from .._logging import get_logger

                    get_logger("llamafactory_video.pooling").warning_rank0(
                        f"Ignoring {path}: {why}. Videos are not pooled from it; delete the file, or set "
                        "`video_token_pool_stride` to pool on purpose."
                    )
                continue
            return VideoPooling.load(path), path
    return None, None


def pooling_from_model_args(model_args: Any) -> tuple[VideoPooling | None, str]:
    r"""The pooling the model key asks for, else the one a pooled run saved; ``(None, "")`` when neither."""
    stride = getattr(model_args, "video_token_pool_stride", 1) or 1
    if stride > 1:
        mode = getattr(model_args, "video_token_pool_mode", "average")
        return VideoPooling.uniform(stride, mode), "video_token_pool_stride"
    pooling, path = saved_pooling(model_args)
    if pooling is not None and not pooling.is_identity:
        return pooling, path or POOLING_FILE
    return None, ""


# ---------------------------------------------------------------------- processor side
def supports_pooling(processor: Any) -> bool:
    image_processor = getattr(processor, "image_processor", None)
    return image_processor is not None and getattr(image_processor, "merge_size", None) is not None


def attach_to_processor(processor: Any, pooling: VideoPooling | None) -> None:
    r"""Make the host's ``qwen2_vl`` mm_plugin expand ``<video>`` into the pooled number of placeholders."""
    if processor is None:
        if pooling is not None:
            raise ValueError("video token pooling needs a multimodal processor; this model has none.")
        return
    setattr(processor, PROCESSOR_ATTR, None if pooling is None or pooling.is_identity else pooling)


def slots_for_frames(num_frames: int, temporal_patch_size: int = 2) -> int:
    r"""Temporal slots (``grid_t``) of a video of ``num_frames`` sampled frames (odd counts are padded)."""
    return max(1, -(-int(num_frames) // temporal_patch_size))


def merged_side(processor: Any) -> int:
    r"""Merged tokens per side of a square frame at the processor's ``video_max_pixels`` (``patch_size x
    merge_size`` px per merged token: 28 on Qwen2-VL / Qwen2.5-VL, 32 on Qwen3-VL)."""
    max_pixels = getattr(processor, "video_max_pixels", None) or 256 * 256
    image_processor = getattr(processor, "image_processor", None)
    patch, merge = getattr(image_processor, "patch_size", None), getattr(image_processor, "merge_size", None)
    token_px = int(patch) * int(merge) if isinstance(patch, int) and isinstance(merge, int) else 28
    return max(1, int(max_pixels**0.5) // token_px)


def processor_pooling(processor: Any) -> VideoPooling | None:
    return getattr(processor, PROCESSOR_ATTR, None)


# ---------------------------------------------------------------------- model side
def find_vl_model(model: nn.Module) -> nn.Module:
    r"""The family's multimodal core (vision tower + language model) inside a possibly PEFT- or DDP-wrapped model,
    found by the family layer; a model of no family that pools raises, naming the families that do."""
    from .families import require

    return require("video_token_pool_stride", model_or_config=model).find_core(model)


def installed_pooling(model: nn.Module) -> VideoPooling | None:
    try:
        core = find_vl_model(model)
    except ValueError:
        return None
    return getattr(core, _INSTALLED_ATTR, None)


def install_on_model(model: nn.Module, pooling: VideoPooling, keep_features: bool = False) -> nn.Module:
    r"""Pool the video features and the positions of ``model`` (instance-level; idempotent), as its family says.

    ``get_video_features`` returns each video's pooled tokens (the family's
    :meth:`~llamafactory_video.model.families.base.VideoFamily.pool_video_output`; the model's own placeholder
    check then compares them with the placeholders the processor emitted); ``get_rope_index`` is the family's
    :meth:`~llamafactory_video.model.families.base.VideoFamily.pooled_rope_index`. With ``keep_features`` the last
    pooled video features (``(N, D)``, in the graph) are kept as ``core.last_pooled_video_features`` for the
    fastslow loss.

    Returns:
        The family's core module.
    """
    from .families import require

    family = require("video_token_pool_stride", model_or_config=model)
    core = family.find_core(model)
    if pooling.is_identity:
        return core
    cls = type(core)

    def get_video_features(pixel_values_videos, video_grid_thw=None, **kwargs):
        out = cls.get_video_features(core, pixel_values_videos, video_grid_thw, **kwargs)
        out = family.pool_video_output(core, out, video_grid_thw, pooling)
        if core.keep_pooled_video_features:
            core.last_pooled_video_features = out.lfv_pooled
        return out

    core.get_video_features = get_video_features
    core.get_rope_index = family.pooled_rope_index(core, pooling)
    core.keep_pooled_video_features = keep_features
    core.last_pooled_video_features = None
    setattr(core, _INSTALLED_ATTR, pooling)
    return core
