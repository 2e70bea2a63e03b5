r"""Pure building blocks of the ``fastslow_ar`` stage (seed 004): slow / fast slots on Qwen2-VL's video grid.

Nothing here touches LlamaFactory or a loaded model; every function works on plain tensors and is unit-tested
in ``tests/unit/test_fastslow.py``. The stage (registry entry, collator, trainer) is built on top later.

Vocabulary
----------
*Slot*: one temporal step of Qwen2-VL / Qwen2.5-VL's video grid, i.e. ``temporal_patch_size`` (= 2) consecutive
sampled frames fused by the 3-D patch embedding. A video with ``video_grid_thw = (T, H, W)`` has ``T`` slots; the
seed's "frames" are our slots (Qwen cannot pool frames of one slot differently: they share every token).

*Merged grid*: after the vision tower's PatchMerger a slot is an ``h x w`` grid of LLM tokens with
``h = H // merge_size``, ``w = W // merge_size`` (merge_size 2: each token covers ``2 x 2`` patches of 14 px, i.e.
28 x 28 px). The merger output of one video comes **t-major, then merged rows, then merged columns**: the video
processor lays patches out as ``(t, h, w, merge, merge)`` and the merger fuses each ``merge x merge`` group;
Qwen2.5-VL's vision tower reorders tokens into attention windows but undoes it with ``reverse_indices`` before
returning ``pooler_output``. (Pinned by ``test_merged_token_order_matches_vision_tower``.)

*Slow / fast slot*: every slot is spatially pooled on its merged grid with ``slow_stride`` (slow) or
``fast_stride`` (fast), see :func:`pooled_grid`. The pooled tokens of slot ``t`` replace its ``h * w`` tokens,
so the number of ``<|video_pad|>`` placeholders, the rows of the visual features and the M-RoPE positions must
all be computed from the same per-slot pooled grids: :func:`slot_token_counts`, :func:`pool_video_features` and
:func:`rope_position_ids` all take the same ``(video_grid_thw, merge_size, patterns, slow_stride, fast_stride)``.

Stride on Qwen's grid
---------------------
The seed (LLaVA-NeXT style) pools a CLIP/SigLIP map whose tokens cover 14 x 14 px (24 x 24 tokens for 336 px)
with stride 4 (slow) and 8 (fast): pooled tokens cover 56 px and 112 px. Here a stride ``s`` is a literal
pooling stride on the **merged** Qwen grid (tokens of 28 px): window ``s x s``, output side ``ceil(side / s)``.
The pixel footprint of a token is kept by :func:`seed_equivalent_stride`: seed 4 / 8 -> Qwen 2 / 4, the defaults
:data:`DEFAULT_SLOW_STRIDE` / :data:`DEFAULT_FAST_STRIDE`. Keeping the seed's *fraction* of the side instead
(24 / 4 = 6 tokens per side) would leave a typical 9 x 9 merged grid (LlamaFactory's default ``video_max_pixels``
256 * 256) with 3 x 3 slow and 2 x 2 fast tokens, and would make the result depend on resolution in the wrong
direction (Qwen's grid already grows with the input size, the token footprint does not).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DEFAULT_FAST_STRIDE",
    "DEFAULT_SLOW_STRIDE",
    "LOSS_KINDS",
    "POOL_MODES",
    "STRATEGIES",
    "ReconstructionHead",
    "frame_causal_mask",
    "next_slot_pairs",
    "pool_slot",
    "pool_video_features",
    "pooled_axis_positions",
    "pooled_grid",
    "reconstruction_loss",
    "rope_position_ids",
    "seed_equivalent_stride",
    "slot_grids",
    "slot_pattern",
    "slot_strides",
    "slot_summary",
    "slot_token_counts",
    "video_slot_ids",
]

STRATEGIES: tuple[str, ...] = ("interleave", "first_slow", "uniform")
POOL_MODES: tuple[str, ...] = ("average", "max", "bilinear")
LOSS_KINDS: tuple[str, ...] = ("cosine", "mse")

#: Slow stride on Qwen's merged grid: the seed's stride 4 on a 14-px token map, same pixel footprint (56 px).
DEFAULT_SLOW_STRIDE: int = 2
#: Fast stride on Qwen's merged grid: the seed's stride 8 on a 14-px token map, same pixel footprint (112 px).
DEFAULT_FAST_STRIDE: int = 4

PoolMode = Literal["average", "max", "bilinear"]


# --------------------------------------------------------------------------------------
# Slot patterns
# --------------------------------------------------------------------------------------


def _num_slow(num_slots: int, slow_ratio: float) -> int:
    # floor(N * ratio) as the seed's implementation (``int(num_frames * slow_ratio)``), robust to 0.29 * 100.
    return min(num_slots, math.floor(num_slots * slow_ratio + 1e-9))


def slot_pattern(num_slots: int, strategy: str, slow_ratio: float = 0.5) -> list[bool]:
    r"""Which slots of a video are slow (``True``) and which fast (``False``).

    The seed's sampling-strategy table (``frame_sampling_strategy``), translated, with the exact rule used here
    (N = ``num_slots``, ``n_slow = floor(N * slow_ratio)``):

    ============== =============================================================== ===========================
    strategy       seed's description                                              rule
    ============== =============================================================== ===========================
    ``interleave`` (alternating) ``S F S F S F S F ...``; slow and fast frames     slot ``i`` slow iff ``i`` is
                   evenly distributed; suits scenes that need both detail and      even; ``slow_ratio`` is not
                   global context.                                                 used
    ``first_slow`` (slow first, fast after) ``S S S S ... F F F F``; the first     the first ``n_slow`` slots
                   frames are slow to capture the initial details, the later       are slow
                   ones fast for a quick transition.
    ``uniform``    (uniform distribution) slow frames spread evenly according to   slow at
                   ``slow_frame_ratio``; flexible control of where slow frames     ``floor(k (N-1) / (n_slow-1))``
                   are; suits trying different configurations.                     ``k = 0..n_slow-1``
                                                                                   (``[0]`` if ``n_slow == 1``)
    ============== =============================================================== ===========================

    Examples (``S`` slow, ``F`` fast): N = 8: interleave ``SFSFSFSF``; first_slow at 0.5 ``SSSSFFFF``, at 0.25
    ``SSFFFFFF``; uniform at 0.5 ``SFSFSFFS`` (slots 0, 2, 4, 7), at 0.25 ``SFFFFFFS``, at 0.75 ``SSSFSSFS``;
    ``tests/unit/test_fastslow.py`` pins more. ``n_slow`` is floored, so a 1-slot video is fast under
    ``first_slow`` / ``uniform`` for any ratio below 1. The counting and placement rules are those of the
    seed's public reference code (``create_frame_types``: ``int(N * ratio)`` slow frames, placed at
    ``linspace(0, N - 1, n_slow)`` cast to integers); the guide itself only gives the table above. The seed's
    ablation "``slow_frame_ratio: 1.0`` = slow only / ``0.0`` = fast only" therefore holds
    for ``first_slow`` and ``uniform``; ``interleave`` is always 1:1.

    Args:
        num_slots: Number of slots ``N >= 0`` (Qwen's ``grid_t`` of the video).
        strategy: ``"interleave"``, ``"first_slow"`` or ``"uniform"``.
        slow_ratio: ``slow_frame_ratio`` in ``[0, 1]``.

    Returns:
        ``list[bool]`` of length ``N``, ``True`` = slow.
    """
    if num_slots < 0:
        raise ValueError(f"num_slots must be >= 0, got {num_slots}")
    if not 0.0 <= slow_ratio <= 1.0:
        raise ValueError(f"slow_ratio must be in [0, 1], got {slow_ratio}")
    if strategy == "interleave":
        return [i % 2 == 0 for i in range(num_slots)]
    n_slow = _num_slow(num_slots, slow_ratio)
    if strategy == "first_slow":
        return [i < n_slow for i in range(num_slots)]
    if strategy == "uniform":
        if n_slow == 0:
            return [False] * num_slots
        if n_slow == 1:
            slow = {0}
        else:
            slow = {k * (num_slots - 1) // (n_slow - 1) for k in range(n_slow)}
        return [i in slow for i in range(num_slots)]
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


def slot_strides(pattern: Sequence[bool], slow_stride: int, fast_stride: int) -> list[int]:
    r"""Stride of every slot: ``slow_stride`` where ``pattern`` is ``True``, else ``fast_stride``.

    Args:
        pattern: ``(T,)`` booleans from :func:`slot_pattern`.
        slow_stride: Stride of slow slots (>= 1).
        fast_stride: Stride of fast slots (>= 1).

    Returns:
        ``list[int]`` of length ``T``.
    """
    for s in (slow_stride, fast_stride):
        if int(s) != s or s < 1:
            raise ValueError(f"strides must be integers >= 1, got {s}")
    return [int(slow_stride) if slow else int(fast_stride) for slow in pattern]


# --------------------------------------------------------------------------------------
# Spatial pooling on the merged grid
# --------------------------------------------------------------------------------------


def seed_equivalent_stride(
    seed_stride: int, patch_size: int = 14, merge_size: int = 2, seed_token_px: int = 14
) -> int:
    r"""Stride on Qwen's merged grid whose pooled tokens cover the same pixels as the seed's pooled tokens.

    ``seed_stride * seed_token_px / (patch_size * merge_size)``, at least 1 (seed 4 -> 2, seed 8 -> 4 for
    patch 14 / merge 2; seed 2 -> 1, i.e. Qwen's merger already did that pooling).

    Args:
        seed_stride: The seed's ``mm_spatial_pool_stride`` (LLaVA grid of ``seed_token_px``-pixel tokens).
        patch_size: Qwen's ViT patch size.
        merge_size: Qwen's spatial merge size.
        seed_token_px: Pixels per token side of the seed's vision tower (CLIP-L/336 and SigLIP/384: 14).

    Returns:
        Integer stride >= 1 (rounded to the nearest integer).
    """
    return max(1, round(seed_stride * seed_token_px / (patch_size * merge_size)))


def pooled_grid(h: int, w: int, stride: int) -> tuple[int, int]:
    r"""Pooled size of an ``h x w`` merged grid: ``(ceil(h / stride), ceil(w / stride))``.

    ``stride`` is a literal pooling stride on Qwen's **merged** grid (``h = grid_h // merge_size``,
    ``w = grid_w // merge_size``): ``average`` / ``max`` pool ``stride x stride`` windows (the last row / column
    of windows is clipped to the grid, nothing is dropped), ``bilinear`` resizes to the same output size. The size
    does not depend on the mode. Stride 1 is the identity. Examples: 16 x 16 -> 8 x 8 (stride 2), 4 x 4
    (stride 4); 9 x 9 -> 5 x 5 (2), 3 x 3 (4); 8 x 5 -> 2 x 2 (4).

    Args:
        h: Merged rows (>= 1).
        w: Merged columns (>= 1).
        stride: Pooling stride (>= 1).

    Returns:
        ``(h', w')``.
    """
    if h < 1 or w < 1:
        raise ValueError(f"grid must be at least 1 x 1, got {h} x {w}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride}")
    return -(-h // stride), -(-w // stride)


def pooled_axis_positions(side: int, stride: int, mode: str = "average") -> list[int]:
    r"""Index, on the unpooled merged axis, that each pooled cell of that axis is placed at (its region's centre).

    ``average`` / ``max``: cell ``i`` pools rows ``[i s, min((i + 1) s, side))``; its position is the floor of
    the centre, ``(r0 + r1 - 1) // 2``. ``bilinear`` (``align_corners=False``): cell ``i`` samples the source
    coordinate ``(i + 0.5) side / out - 0.5``, floored. Stride 1 gives ``0, 1, ..., side - 1`` in every mode; all
    positions lie in ``[0, side)``, so a pooled slot keeps the spatial frame of the unpooled one.

    Args:
        side: Unpooled merged side length.
        stride: Pooling stride.
        mode: ``"average"``, ``"max"`` or ``"bilinear"``.

    Returns:
        ``list[int]`` of length ``ceil(side / stride)``.
    """
    out = pooled_grid(side, 1, stride)[0]
    if mode in ("average", "max"):
        return [(i * stride + min((i + 1) * stride, side) - 1) // 2 for i in range(out)]
    if mode == "bilinear":
        return [((2 * i + 1) * side - out) // (2 * out) for i in range(out)]
    raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")


def _pool_grids(x: torch.Tensor, stride: int, mode: str) -> torch.Tensor:
    r"""Pool ``(n, h, w, D)`` slot grids to ``(n, h', w', D)`` (see :func:`pooled_grid`)."""
    _, h, w, _ = x.shape
    out_h, out_w = pooled_grid(h, w, stride)
    if stride == 1:
        if mode not in POOL_MODES:
            raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
        return x
    y = x.permute(0, 3, 1, 2)  # (n, D, h, w)
    kernel = (min(stride, h), min(stride, w))
    if mode == "average":
        y = F.avg_pool2d(y, kernel_size=kernel, stride=stride, ceil_mode=True)
    elif mode == "max":
        y = F.max_pool2d(y, kernel_size=kernel, stride=stride, ceil_mode=True)
    elif mode == "bilinear":
        y = F.interpolate(y, size=(out_h, out_w), mode="bilinear", align_corners=False)
    else:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}")
    if y.shape[-2:] != (out_h, out_w):  # defensive: PyTorch's ceil-mode rule must agree with ours
        raise RuntimeError(f"pooling produced {tuple(y.shape[-2:])}, expected {(out_h, out_w)}")
    return y.permute(0, 2, 3, 1)


def pool_slot(features: torch.Tensor, h: int, w: int, stride: int, mode: str = "average") -> torch.Tensor:
    r"""Spatially pool one slot's merged tokens.

    ``average``: mean over each ``stride x stride`` window, clipped windows divide by their own size. ``max``:
    elementwise max over each window. ``bilinear``: ``F.interpolate(..., size=pooled_grid, mode="bilinear",
    align_corners=False)`` (LLaVA-NeXT's ``get_2dPool``; no antialiasing).

    Args:
        features: ``(h * w, D)`` tokens of one slot, row-major (Qwen's merged order).
        h: Merged rows.
        w: Merged columns.
        stride: Pooling stride (1 = unchanged).
        mode: ``"average"``, ``"max"`` or ``"bilinear"``.

    Returns:
        ``(h' * w', D)`` pooled tokens, row-major, ``(h', w') = pooled_grid(h, w, stride)``.
    """
    if features.dim() != 2 or features.shape[0] != h * w:
        raise ValueError(f"features must be (h*w, D) = ({h * w}, D), got {tuple(features.shape)}")
    pooled = _pool_grids(features.reshape(1, h, w, -1), stride, mode)
    return pooled.reshape(-1, features.shape[-1])


def _video_dims(video_grid_thw: torch.Tensor | Sequence[Sequence[int]], merge_size: int) -> list[tuple[int, int, int]]:
    rows = video_grid_thw.tolist() if isinstance(video_grid_thw, torch.Tensor) else [list(r) for r in video_grid_thw]
    dims = []
    for t, gh, gw in rows:
        if gh % merge_size or gw % merge_size:
            raise ValueError(f"grid {(t, gh, gw)} is not divisible by merge_size={merge_size}")
        dims.append((int(t), int(gh) // merge_size, int(gw) // merge_size))
    return dims


def _check_patterns(dims: list[tuple[int, int, int]], patterns: Sequence[Sequence[bool]]) -> None:
    if len(patterns) != len(dims):
        raise ValueError(f"got {len(patterns)} slot patterns for {len(dims)} videos")
    for v, ((t, _, _), pattern) in enumerate(zip(dims, patterns)):
        if len(pattern) != t:
            raise ValueError(f"video {v}: pattern has {len(pattern)} slots, video_grid_thw has grid_t={t}")


def slot_grids(
    video_grid_thw: torch.Tensor | Sequence[Sequence[int]],
    merge_size: int,
    patterns: Sequence[Sequence[bool]],
    slow_stride: int,
    fast_stride: int,
) -> list[list[tuple[int, int]]]:
    r"""Pooled merged grid ``(h', w')`` of every slot of every video.

    Args:
        video_grid_thw: ``(V, 3)`` Qwen's ``(grid_t, grid_h, grid_w)`` per video (patch units, before merging).
        merge_size: Qwen's ``spatial_merge_size``.
        patterns: ``V`` lists of ``grid_t`` booleans (``True`` = slow).
        slow_stride: Stride of slow slots.
        fast_stride: Stride of fast slots.

    Returns:
        ``V`` lists of ``grid_t`` ``(h', w')`` tuples.
    """
    dims = _video_dims(video_grid_thw, merge_size)
    _check_patterns(dims, patterns)
    return [
        [pooled_grid(h, w, s) for s in slot_strides(pattern, slow_stride, fast_stride)]
        for (_, h, w), pattern in zip(dims, patterns)
    ]


def slot_token_counts(
    video_grid_thw: torch.Tensor | Sequence[Sequence[int]],
    merge_size: int,
    patterns: Sequence[Sequence[bool]],
    slow_stride: int,
    fast_stride: int,
) -> list[list[int]]:
    r"""Number of ``<|video_pad|>`` tokens of every slot (``h' * w'``); ``sum`` per video = placeholders to emit.

    With ``slow_stride = fast_stride = 1`` the per-video sums equal the host's
    ``grid_t * grid_h * grid_w // merge_size**2``.

    Args:
        video_grid_thw: ``(V, 3)`` per-video ``(grid_t, grid_h, grid_w)``.
        merge_size: Qwen's ``spatial_merge_size``.
        patterns: ``V`` lists of ``grid_t`` booleans (``True`` = slow).
        slow_stride: Stride of slow slots.
        fast_stride: Stride of fast slots.

    Returns:
        ``V`` lists of ``grid_t`` ints.
    """
    return [
        [h * w for h, w in grids]
        for grids in slot_grids(video_grid_thw, merge_size, patterns, slow_stride, fast_stride)
    ]


def pool_video_features(
    features: torch.Tensor,
    video_grid_thw: torch.Tensor | Sequence[Sequence[int]],
    merge_size: int,
    patterns: Sequence[Sequence[bool]],
    slow_stride: int,
    fast_stride: int,
    mode: str = "average",
) -> tuple[torch.Tensor, list[list[int]]]:
    r"""Pool the vision tower's merged video tokens slot by slot.

    Args:
        features: ``(sum_v T_v h_v w_v, D)`` video features in Qwen's merged order (``torch.cat`` of
            ``get_video_features(...).pooler_output``: videos in order, each t-major, then rows, then columns).
        video_grid_thw: ``(V, 3)`` per-video ``(grid_t, grid_h, grid_w)``.
        merge_size: Qwen's ``spatial_merge_size``.
        patterns: ``V`` lists of ``grid_t`` booleans (``True`` = slow).
        slow_stride: Stride of slow slots.
        fast_stride: Stride of fast slots.
        mode: ``"average"``, ``"max"`` or ``"bilinear"``.

    Returns:
        ``(pooled, counts)``: ``pooled`` is ``(sum of counts, D)`` in the same order (videos, then slots, each
        slot row-major on its pooled grid), ready for ``masked_scatter`` into placeholders expanded with
        :func:`slot_token_counts`; ``counts`` is that function's output.
    """
    dims = _video_dims(video_grid_thw, merge_size)
    _check_patterns(dims, patterns)
    sizes = [t * h * w for t, h, w in dims]
    if features.dim() != 2 or features.shape[0] != sum(sizes):
        raise ValueError(f"features must be ({sum(sizes)}, D) for video_grid_thw, got {tuple(features.shape)}")
    out: list[torch.Tensor] = []
    counts: list[list[int]] = []
    for (t, h, w), pattern, video in zip(dims, patterns, torch.split(features, sizes)):
        grid = video.reshape(t, h, w, -1)
        strides = slot_strides(pattern, slow_stride, fast_stride)
        per_slot: list[torch.Tensor | None] = [None] * t
        for stride in sorted(set(strides)):
            idx = [i for i, s in enumerate(strides) if s == stride]
            pooled = _pool_grids(grid[idx], stride, mode)  # (k, h', w', D)
            for k, i in enumerate(idx):
                per_slot[i] = pooled[k].reshape(-1, grid.shape[-1])
        out.extend(per_slot)  # type: ignore[arg-type]
        counts.append([p.shape[0] for p in per_slot])  # type: ignore[union-attr]
    if not out:
        return features[:0], counts
    return torch.cat(out, dim=0), counts


# --------------------------------------------------------------------------------------
# M-RoPE positions
# --------------------------------------------------------------------------------------


def _time_offsets(
    num_slots: int, second_per_grid_t: float, tokens_per_second: float | None, truncate_seconds: bool
) -> list[int]:
    if tokens_per_second is None:  # Qwen2-VL: one position per slot
        return list(range(num_slots))
    if truncate_seconds:  # transformers 5.6: tokens_per_second * int(second_per_grid_t)
        interval = tokens_per_second * int(second_per_grid_t)
        return [int(t * interval) for t in range(num_slots)]
    return [math.floor(t * float(second_per_grid_t) * tokens_per_second) for t in range(num_slots)]


def _vision_runs(types: list[int]) -> list[tuple[int, int, int]]:
    """``(type, start, end)`` of maximal runs of equal token type."""
    runs = []
    start = 0
    for i in range(1, len(types) + 1):
        if i == len(types) or types[i] != types[start]:
            runs.append((types[start], start, i))
            start = i
    return runs


def rope_position_ids(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    video_grid_thw: torch.Tensor | Sequence[Sequence[int]] | None,
    patterns: Sequence[Sequence[bool]] | None,
    video_token_id: int,
    *,
    slow_stride: int = 1,
    fast_stride: int = 1,
    pool_mode: str = "average",
    spatial_merge_size: int = 2,
    tokens_per_second: float | None = None,
    second_per_grid_ts: Sequence[float] | torch.Tensor | None = None,
    truncate_seconds: bool = True,
    image_token_id: int | None = None,
    image_grid_thw: torch.Tensor | Sequence[Sequence[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""M-RoPE ``(time, height, width)`` positions for sequences whose video placeholders carry pooled slots.

    Drop-in for the host's ``get_rope_index`` (transformers 5.6, Qwen2-VL and Qwen2.5-VL) when every video run of
    ``<|video_pad|>`` was expanded with :func:`slot_token_counts`; with strides 1 it returns exactly the host's
    output (``test_rope_matches_host_at_stride_1``). Rules, per sample, over the tokens kept by
    ``attention_mask`` (padding gets position 0, as in the host):

    * text tokens (``<|vision_start|>`` and ``<|vision_end|>`` included) get ``p, p, p`` with ``p`` counting on
      from the current position;
    * a video starting at current position ``p`` with merged grid ``h x w``: pooled token ``(i, j)`` of slot
      ``t`` gets time ``p + offset(t)``, height ``p + rows[i]``, width ``p + cols[j]``, where
      ``rows = pooled_axis_positions(h, stride_t, pool_mode)`` (the centre of the pooled region on the
      **unpooled** grid) and likewise ``cols``. ``offset(t)`` is absolute, whatever the other slots' sizes:
      ``t`` for Qwen2-VL (``tokens_per_second=None``); for Qwen2.5-VL ``t * tokens_per_second *
      int(second_per_grid_t)`` as transformers 5.6 computes it (``truncate_seconds=True``), or the original
      Qwen2.5-VL rule ``floor(t * second_per_grid_t * tokens_per_second)`` (``truncate_seconds=False``);
    * after a video (or image) the current position advances by ``max(h, w)`` exactly as in the host, which
      does not count the time axis there; so text after a pooled video has the same positions as after the
      unpooled one;
    * images (``image_token_id`` / ``image_grid_thw``) are never pooled and use offset ``t`` (t = 1).

    Vision spans are found as maximal runs of ``video_token_id`` / ``image_token_id`` tokens, like the host's
    ``mm_token_type_ids`` grouping; ``<|vision_start|>`` needs no special handling (it is a text token).

    Args:
        input_ids: ``(B, L)`` token ids.
        attention_mask: ``(B, L)`` 1 for real tokens, 0 for padding, or ``None``.
        video_grid_thw: ``(V, 3)`` per-video ``(grid_t, grid_h, grid_w)`` in batch order, or ``None``.
        patterns: ``V`` lists of ``grid_t`` booleans (``True`` = slow); ``None`` = no pooling.
        video_token_id: id of ``<|video_pad|>``.
        slow_stride: Stride of slow slots.
        fast_stride: Stride of fast slots.
        pool_mode: Pooling mode (decides the region centres, see :func:`pooled_axis_positions`).
        spatial_merge_size: Qwen's ``vision_config.spatial_merge_size``.
        tokens_per_second: Qwen2.5-VL's ``vision_config.tokens_per_second``; ``None`` for Qwen2-VL.
        second_per_grid_ts: ``(V,)`` seconds per slot of each video (Qwen2.5-VL); ``None`` = 1 for each.
        truncate_seconds: See above; ``True`` matches transformers 5.6.
        image_token_id: id of ``<|image_pad|>`` when the batch also holds images.
        image_grid_thw: ``(I, 3)`` per-image grids in batch order.

    Returns:
        ``(position_ids, rope_deltas)``: ``(3, B, L)`` long positions and ``(B, 1)`` deltas
        ``max(position) + 1 - number of real tokens``, as the host returns them.
    """
    bsz, seq_len = input_ids.shape
    device = input_ids.device
    merge = spatial_merge_size
    videos = _video_dims(video_grid_thw, merge) if video_grid_thw is not None else []
    if patterns is None:
        patterns = [[True] * t for t, _, _ in videos]
        slow_stride = fast_stride = 1
    _check_patterns(videos, patterns)
    images = _video_dims(image_grid_thw, merge) if image_grid_thw is not None else []
    if second_per_grid_ts is None:
        seconds = [1.0] * len(videos)
    else:
        seconds = [
            float(s)
            for s in (
                second_per_grid_ts.tolist() if isinstance(second_per_grid_ts, torch.Tensor) else second_per_grid_ts
            )
        ]
        if len(seconds) < len(videos):
            raise ValueError(f"second_per_grid_ts has {len(seconds)} entries for {len(videos)} videos")

    types = torch.zeros_like(input_ids)
    types[input_ids == video_token_id] = 2
    if image_token_id is not None:
        types[input_ids == image_token_id] = 1

    position_ids = torch.zeros(3, bsz, seq_len, dtype=torch.long, device=device)
    deltas = []
    next_video = next_image = 0
    for b in range(bsz):
        keep = (
            attention_mask[b].bool()
            if attention_mask is not None
            else torch.ones(seq_len, dtype=torch.bool, device=device)
        )
        sample_types = types[b][keep].tolist()
        pieces: list[torch.Tensor] = []
        pos = 0
        for kind, start, end in _vision_runs(sample_types) if sample_types else []:
            length = end - start
            if kind == 0:
                pieces.append(torch.arange(pos, pos + length, dtype=torch.long).expand(3, -1))
                pos += length
                continue
            if kind == 1:
                if next_image >= len(images):
                    raise ValueError("more image runs in input_ids than rows in image_grid_thw")
                t, h, w = images[next_image]
                next_image += 1
                strides, offsets = [1] * t, list(range(t))
            else:
                if next_video >= len(videos):
                    raise ValueError("more <|video_pad|> runs in input_ids than rows in video_grid_thw")
                t, h, w = videos[next_video]
                strides = slot_strides(patterns[next_video], slow_stride, fast_stride)
                offsets = _time_offsets(t, seconds[next_video], tokens_per_second, truncate_seconds)
                next_video += 1
            slot_pos = []
            for stride, offset in zip(strides, offsets):
                rows = torch.tensor(pooled_axis_positions(h, stride, pool_mode), dtype=torch.long)
                cols = torch.tensor(pooled_axis_positions(w, stride, pool_mode), dtype=torch.long)
                hh = rows.repeat_interleave(len(cols))
                ww = cols.repeat(len(rows))
                tt = torch.full_like(hh, offset)
                slot_pos.append(torch.stack([tt, hh, ww]) + pos)
            vision = torch.cat(slot_pos, dim=1)
            if vision.shape[1] != length:
                what = "video" if kind == 2 else "image"
                raise ValueError(
                    f"sample {b}: a {what} run has {length} placeholder tokens but its grid "
                    f"{(t, h * merge, w * merge)} with strides {strides} gives {vision.shape[1]}; "
                    "expand placeholders with slot_token_counts"
                )
            pieces.append(vision)
            pos += max(h, w)
        if pieces:
            llm_positions = torch.cat(pieces, dim=1).to(device)
            position_ids[:, b, keep] = llm_positions
            deltas.append(int(llm_positions.max()) + 1 - int(keep.sum()))
        else:
            deltas.append(0)
    if next_video != len(videos):
        raise ValueError(f"video_grid_thw has {len(videos)} rows but input_ids hold {next_video} video runs")
    # more image rows than image runs is fine, as in the host: LlamaFactory's collator gives a text-only batch a fake
    # image whose placeholders are masked out (so that every rank runs the vision tower)
    return position_ids, torch.tensor(deltas, dtype=torch.long, device=device).unsqueeze(1)


# --------------------------------------------------------------------------------------
# Slot ids and the frame-causal block mask
# --------------------------------------------------------------------------------------


def video_slot_ids(input_ids: torch.Tensor, video_token_id: int, counts: Sequence[Sequence[int]]) -> torch.Tensor:
    r"""Slot index of every token: ``-1`` for text (and padding), ``0, 1, ...`` for the video slots of a sample.

    Slots are numbered per sample, across its videos in order (a second video's slots come after the first's),
    so "earlier slot" means "earlier in the sequence".

    Args:
        input_ids: ``(B, L)`` token ids with placeholders expanded by :func:`slot_token_counts`.
        video_token_id: id of ``<|video_pad|>``.
        counts: ``V`` lists of per-slot token counts, videos in batch order (:func:`slot_token_counts`).

    Returns:
        ``(B, L)`` long tensor.
    """
    slot_ids = torch.full_like(input_ids, -1, dtype=torch.long)
    is_video = (input_ids == video_token_id).tolist()
    v = 0
    for b, row in enumerate(is_video):
        next_slot = 0
        for kind, start, end in _vision_runs([int(x) for x in row]) if row else []:
            if not kind:
                continue
            if v >= len(counts):
                raise ValueError("more <|video_pad|> runs in input_ids than videos in counts")
            if sum(counts[v]) != end - start:
                raise ValueError(f"video {v}: run of {end - start} placeholders, slot counts sum to {sum(counts[v])}")
            ids = torch.repeat_interleave(
                torch.arange(next_slot, next_slot + len(counts[v])), torch.tensor(list(counts[v]), dtype=torch.long)
            )
            slot_ids[b, start:end] = ids.to(slot_ids.device)
            next_slot += len(counts[v])
            v += 1
    if v != len(counts):
        raise ValueError(f"counts describe {len(counts)} videos but input_ids hold {v} video runs")
    return slot_ids


def frame_causal_mask(
    slot_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    r"""Frame-level block-causal attention mask (the seed's "each frame only sees the previous frames").

    Query ``i`` may attend key ``j`` iff key ``j`` is not padding and either ``j <= i`` (causal, as for text) or
    both are video tokens of the same slot. Since a sample's slots are contiguous and numbered in order, a video
    token sees every token of its own slot, every earlier slot and all earlier text, never a later slot; text
    keeps its plain causal mask. A padding query attends only to itself (its output is ignored; this avoids
    fully masked rows, which give NaN under sdpa).

    Pass the result as ``attention_mask`` of the language model together with explicit 3-D ``position_ids``:
    transformers 5.6 forwards 4-D masks unchanged (``masking_utils._preprocess_mask_arguments``). sdpa accepts
    the boolean form, eager attention adds the mask to the scores and needs the additive form (``dtype``); the
    additive form works for both. flash-attention cannot take it.

    Args:
        slot_ids: ``(B, L)`` long, ``-1`` for text, slot index for video tokens (:func:`video_slot_ids`).
        attention_mask: ``(B, L)`` 1 for real tokens, 0 for padding, or ``None``.
        dtype: ``None`` for a boolean mask (``True`` = may attend), or a float dtype for an additive mask
            (``0`` where allowed, ``finfo(dtype).min`` elsewhere).

    Returns:
        ``(B, 1, L, L)`` boolean or additive float mask.
    """
    seq_len = slot_ids.shape[1]
    device = slot_ids.device
    idx = torch.arange(seq_len, device=device)
    allowed = (idx[None, :] <= idx[:, None]).unsqueeze(0)  # (1, L, L): key j <= query i
    same_slot = (slot_ids[:, :, None] == slot_ids[:, None, :]) & (slot_ids[:, :, None] >= 0)
    allowed = allowed | same_slot
    if attention_mask is not None:
        valid = attention_mask.to(device=device).bool()
        allowed = allowed & valid[:, None, :]
        eye = torch.eye(seq_len, dtype=torch.bool, device=device).unsqueeze(0)
        allowed = torch.where(valid[:, :, None], allowed, eye)
    allowed = allowed.unsqueeze(1)
    if dtype is None:
        return allowed
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)


# --------------------------------------------------------------------------------------
# Next-slot reconstruction
# --------------------------------------------------------------------------------------


class ReconstructionHead(nn.Module):
    r"""Small MLP from LLM hidden states to visual features: ``H -> mlp_hidden -> GELU -> D``.

    Input ``(..., H)``, output ``(..., D)``; ``D`` is the dimension of the (merged, projected) visual features,
    which for Qwen2-VL / Qwen2.5-VL equals the text hidden size.
    """

    def __init__(self, hidden_size: int, feature_dim: int, mlp_hidden_size: int | None = None) -> None:
        super().__init__()
        mid = mlp_hidden_size or hidden_size
        self.hidden_size = hidden_size
        self.feature_dim = feature_dim
        self.net = nn.Sequential(nn.Linear(hidden_size, mid), nn.GELU(), nn.Linear(mid, feature_dim))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        r"""``(..., H) -> (..., D)``."""
        return self.net(hidden_states)


def slot_summary(features: torch.Tensor, grid: tuple[int, int], size: int = 1) -> torch.Tensor:
    r"""Adaptive average pooling of a slot's tokens to a common ``size x size`` grid.

    Slow and fast slots have different token grids; summarising both to the same size makes slot ``t``'s
    prediction comparable with slot ``t + 1``'s target whatever their types. ``size = 1`` is the slot mean.
    A grid smaller than ``size`` is repeated (adaptive pooling's upsampling).

    Args:
        features: ``(h * w, D)`` tokens of one slot, row-major.
        grid: ``(h, w)`` of that slot.
        size: Output side.

    Returns:
        ``(size * size, D)``.
    """
    h, w = grid
    if features.dim() != 2 or features.shape[0] != h * w:
        raise ValueError(f"features must be (h*w, D) = ({h * w}, D), got {tuple(features.shape)}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    x = features.reshape(1, h, w, -1).permute(0, 3, 1, 2)
    x = F.adaptive_avg_pool2d(x, (size, size))
    return x.permute(0, 2, 3, 1).reshape(size * size, -1)


def next_slot_pairs(
    hidden_rows: torch.Tensor,
    feature_rows: torch.Tensor,
    grids: Sequence[Sequence[tuple[int, int]]],
    size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Pair the summarised hidden states of slot ``t`` with the summarised features of slot ``t + 1``.

    Pairs never cross videos; a video with ``T`` slots gives ``T - 1`` pairs.

    Args:
        hidden_rows: ``(N, H)`` LLM hidden states at the video placeholders, in sequence order
            (``hidden[input_ids == video_token_id]``), which is the row order of ``feature_rows``.
        feature_rows: ``(N, D)`` pooled visual features (:func:`pool_video_features`).
        grids: ``V`` lists of per-slot pooled grids (:func:`slot_grids`).
        size: Common summary side (:func:`slot_summary`).

    Returns:
        ``(inputs, targets)``: ``(P, size * size, H)`` and ``(P, size * size, D)`` with ``P = sum_v (T_v - 1)``;
        ``targets`` is detached.
    """
    n = sum(h * w for video in grids for h, w in video)
    if hidden_rows.shape[0] != n or feature_rows.shape[0] != n:
        raise ValueError(f"expected {n} rows, got hidden {hidden_rows.shape[0]} and features {feature_rows.shape[0]}")
    inputs, targets = [], []
    offset = 0
    for video in grids:
        starts = []
        for h, w in video:
            starts.append(offset)
            offset += h * w
        for t in range(len(video) - 1):
            (h0, w0), (h1, w1) = video[t], video[t + 1]
            inputs.append(slot_summary(hidden_rows[starts[t] : starts[t] + h0 * w0], (h0, w0), size))
            targets.append(slot_summary(feature_rows[starts[t + 1] : starts[t + 1] + h1 * w1], (h1, w1), size))
    if not inputs:
        return hidden_rows.new_zeros(0, size * size, hidden_rows.shape[-1]), feature_rows.new_zeros(
            0, size * size, feature_rows.shape[-1]
        )
    return torch.stack(inputs), torch.stack(targets).detach()


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    r"""Next-slot feature reconstruction loss; ``target`` is detached (no gradient reaches the vision features).

    * ``mse``: :math:`\frac{1}{ND}\sum_{n,d} (\hat y_{nd} - y_{nd})^2`
    * ``cosine``: :math:`\frac{1}{N}\sum_n \bigl(1 - \frac{\hat y_n \cdot y_n}{\max(\|\hat y_n\| \|y_n\|,
      \epsilon)}\bigr)` with ``eps = 1e-8``

    Leading dimensions are flattened: ``(..., D)`` inputs count ``N = prod(...)`` vectors. An empty input gives
    ``pred.sum() * 0`` (keeps the head in the graph so a rank without pairs still joins DDP's reduction).

    Args:
        pred: ``(N, D)`` or ``(..., D)`` predictions.
        target: same shape, targets.
        kind: ``"cosine"`` or ``"mse"``.

    Returns:
        Scalar tensor.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if kind not in LOSS_KINDS:
        raise ValueError(f"kind must be one of {LOSS_KINDS}, got {kind!r}")
    target = target.detach()
    d = pred.shape[-1]
    p = pred.reshape(-1, d)
    y = target.reshape(-1, d).to(p.dtype)
    if p.shape[0] == 0:
        return pred.sum() * 0.0
    if kind == "mse":
        return ((p - y) ** 2).mean()
    cos = (p * y).sum(-1) / (p.norm(dim=-1) * y.norm(dim=-1)).clamp_min(1e-8)
    return (1.0 - cos).mean()
