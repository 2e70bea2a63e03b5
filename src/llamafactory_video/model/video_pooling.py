r"""Video token pooling on a loaded Qwen2-VL / Qwen2.5-VL: one configuration, applied in the three places that
must agree (placeholders, features, positions).

:class:`VideoPooling` says how every slot of a video is pooled (slow / fast strides, strategy, mode). It is
applied

* to the **processor** (:func:`attach_to_processor`): LlamaFactory's ``qwen2_vl`` mm_plugin then expands each
  ``<video>`` into the pooled number of ``<|video_pad|>`` tokens (``host/pooling.py``);
* to the **model** (:func:`install_on_model`): the vision tower's video features are pooled slot by slot and
  ``get_rope_index`` returns the pooled M-RoPE positions, for training, the host's collator and ``generate``.

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

from .fastslow import POOL_MODES, STRATEGIES, pool_video_features, rope_position_ids, slot_grids, slot_pattern


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
    r"""Merged tokens per side of a square frame at the processor's ``video_max_pixels`` (28 px per merged token)."""
    max_pixels = getattr(processor, "video_max_pixels", None) or 256 * 256
    return max(1, int(max_pixels**0.5) // 28)


def processor_pooling(processor: Any) -> VideoPooling | None:
    return getattr(processor, PROCESSOR_ATTR, None)


# ---------------------------------------------------------------------- model side
def find_vl_model(model: nn.Module) -> nn.Module:
    r"""The Qwen2-VL-family core (the module with ``visual``, ``get_video_features`` and ``get_rope_index``) inside
    a possibly PEFT- or DDP-wrapped model."""
    for module in model.modules():
        if hasattr(module, "visual") and hasattr(module, "get_rope_index") and hasattr(module, "get_video_features"):
            if hasattr(module, "language_model"):
                return module
    raise ValueError(
        f"video token pooling supports the Qwen2-VL family (Qwen2-VL, Qwen2.5-VL); {type(model).__name__} has no "
        "vision tower with get_video_features / get_rope_index."
    )


def installed_pooling(model: nn.Module) -> VideoPooling | None:
    try:
        core = find_vl_model(model)
    except ValueError:
        return None
    return getattr(core, _INSTALLED_ATTR, None)


def install_on_model(model: nn.Module, pooling: VideoPooling, keep_features: bool = False) -> nn.Module:
    r"""Pool the video features and the M-RoPE positions of ``model`` (instance-level; idempotent).

    ``get_video_features`` returns each video's pooled tokens (the model's own placeholder check then compares
    them with the placeholders the processor emitted); ``get_rope_index`` returns
    :func:`~llamafactory_video.model.fastslow.rope_position_ids`. With ``keep_features`` the last pooled video
    features (``(N, D)``, in the graph) are kept as ``core.last_pooled_video_features`` for the fastslow loss.

    Returns:
        The Qwen2-VL-family core module.
    """
    core = find_vl_model(model)
    if pooling.is_identity:
        return core
    cls = type(core)
    merge = int(core.visual.spatial_merge_size)
    vision_config = getattr(core.config, "vision_config", None)
    tokens_per_second = getattr(vision_config, "tokens_per_second", None) if "2_5" in cls.__name__ else None
    video_token_id = int(core.config.video_token_id)
    image_token_id = getattr(core.config, "image_token_id", None)

    def get_video_features(pixel_values_videos, video_grid_thw=None, **kwargs):
        out = cls.get_video_features(core, pixel_values_videos, video_grid_thw, **kwargs)
        stock = torch.cat(list(out.pooler_output), dim=0)
        pooled, counts = pool_video_features(
            stock,
            video_grid_thw,
            merge,
            pooling.patterns(video_grid_thw),
            pooling.slow_stride,
            pooling.fast_stride,
            pooling.mode,
        )
        out.pooler_output = tuple(torch.split(pooled, [sum(c) for c in counts]))
        if core.keep_pooled_video_features:
            core.last_pooled_video_features = pooled
        return out

    def get_rope_index(
        input_ids,
        mm_token_type_ids=None,
        image_grid_thw=None,
        video_grid_thw=None,
        second_per_grid_ts=None,
        attention_mask=None,
        **kwargs,
    ):
        if attention_mask is not None and attention_mask.dim() != 2:
            attention_mask = None
        return rope_position_ids(
            input_ids,
            attention_mask,
            video_grid_thw,
            pooling.patterns(video_grid_thw) if video_grid_thw is not None else None,
            video_token_id,
            slow_stride=pooling.slow_stride,
            fast_stride=pooling.fast_stride,
            pool_mode=pooling.mode,
            spatial_merge_size=merge,
            tokens_per_second=tokens_per_second,
            second_per_grid_ts=second_per_grid_ts,
            image_token_id=image_token_id if image_grid_thw is not None else None,
            image_grid_thw=image_grid_thw,
        )

    core.get_video_features = get_video_features
    core.get_rope_index = get_rope_index
    core.keep_pooled_video_features = keep_features
    core.last_pooled_video_features = None
    setattr(core, _INSTALLED_ATTR, pooling)
    return core
