"""Unit tests of the fastslow_ar building blocks (``llamafactory_video.model.fastslow``)."""

import copy
import math

import pytest
import torch
from torch import nn

from llamafactory_video.model.fastslow import (
    DEFAULT_FAST_STRIDE,
    DEFAULT_SLOW_STRIDE,
    ReconstructionHead,
    frame_causal_mask,
    next_slot_pairs,
    pool_slot,
    pool_video_features,
    pooled_axis_positions,
    pooled_grid,
    reconstruction_loss,
    rope_position_ids,
    seed_equivalent_stride,
    slot_grids,
    slot_pattern,
    slot_strides,
    slot_summary,
    slot_token_counts,
    video_slot_ids,
)


def _s(pattern: list[bool]) -> str:
    return "".join("S" if slow else "F" for slow in pattern)


# --------------------------------------------------------------------------------------
# Slot patterns (the seed's sampling-strategy table)
# --------------------------------------------------------------------------------------

# (strategy, ratio, num_slots) -> pattern. Seed: interleave "S F S F S F S F ...", first_slow "S S S S ... F F F F",
# uniform "slow frames spread evenly according to slow_frame_ratio".
PINNED = {
    ("interleave", 0.5, 8): "SFSFSFSF",
    ("interleave", 0.5, 5): "SFSFS",
    ("interleave", 0.5, 1): "S",
    ("interleave", 0.0, 6): "SFSFSF",  # the ratio plays no role in interleave
    ("interleave", 1.0, 6): "SFSFSF",
    ("first_slow", 0.5, 8): "SSSSFFFF",
    ("first_slow", 0.25, 8): "SSFFFFFF",
    ("first_slow", 0.75, 8): "SSSSSSFF",
    ("first_slow", 0.5, 5): "SSFFF",  # floor(2.5) = 2
    ("first_slow", 0.3, 10): "SSSFFFFFFF",
    ("first_slow", 1.0, 4): "SSSS",
    ("first_slow", 0.0, 4): "FFFF",
    ("first_slow", 0.5, 1): "F",
    ("uniform", 0.5, 8): "SFSFSFFS",  # slots 0, 2, 4, 7 = linspace(0, 7, 4) floored
    ("uniform", 0.25, 8): "SFFFFFFS",
    ("uniform", 0.75, 8): "SSSFSSFS",
    ("uniform", 0.5, 10): "SFSFSFSFFS",
    ("uniform", 0.2, 10): "SFFFFFFFFS",
    ("uniform", 0.1, 10): "SFFFFFFFFF",
    ("uniform", 0.25, 16): "SFFFFSFFFFSFFFFS",
    ("uniform", 1.0, 5): "SSSSS",
    ("uniform", 0.0, 5): "FFFFF",
}


@pytest.mark.parametrize(("strategy", "ratio", "num_slots"), sorted(PINNED))
def test_slot_pattern_pinned(strategy: str, ratio: float, num_slots: int) -> None:
    assert _s(slot_pattern(num_slots, strategy, ratio)) == PINNED[(strategy, ratio, num_slots)]


@pytest.mark.parametrize("num_slots", [0, 1, 2, 3, 7, 8, 16, 33, 100])
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.29, 0.5, 0.7, 1.0])
def test_slot_pattern_properties(num_slots: int, ratio: float) -> None:
    n_slow = math.floor(num_slots * ratio + 1e-9)
    inter = slot_pattern(num_slots, "interleave", ratio)
    assert inter == [i % 2 == 0 for i in range(num_slots)]
    first = slot_pattern(num_slots, "first_slow", ratio)
    assert first == [True] * n_slow + [False] * (num_slots - n_slow)
    uni = slot_pattern(num_slots, "uniform", ratio)
    assert sum(uni) == n_slow and len(uni) == num_slots
    expected = torch.zeros(num_slots, dtype=torch.bool)
    if n_slow:  # the seed implementation's torch.linspace(0, N - 1, n_slow, dtype=long)
        expected[torch.linspace(0, num_slots - 1, n_slow, dtype=torch.long)] = True
    assert uni == expected.tolist()
    if n_slow >= 2:
        assert uni[0] and uni[-1]


def test_slot_pattern_rejects_bad_args() -> None:
    with pytest.raises(ValueError):
        slot_pattern(4, "random", 0.5)
    with pytest.raises(ValueError):
        slot_pattern(4, "uniform", 1.5)
    with pytest.raises(ValueError):
        slot_pattern(-1, "uniform", 0.5)
    with pytest.raises(ValueError):
        slot_strides([True], 0, 4)


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------


def test_pooled_grid_and_defaults() -> None:
    assert pooled_grid(16, 16, 1) == (16, 16)
    assert pooled_grid(16, 16, 2) == (8, 8)
    assert pooled_grid(16, 16, 4) == (4, 4)
    assert pooled_grid(9, 9, 2) == (5, 5)
    assert pooled_grid(9, 9, 4) == (3, 3)
    assert pooled_grid(8, 5, 4) == (2, 2)
    assert pooled_grid(3, 2, 8) == (1, 1)
    # the seed's strides 4 / 8 on 14-px tokens keep their pixel footprint on Qwen's 28-px merged tokens
    assert seed_equivalent_stride(4) == DEFAULT_SLOW_STRIDE == 2
    assert seed_equivalent_stride(8) == DEFAULT_FAST_STRIDE == 4
    assert seed_equivalent_stride(2) == 1
    with pytest.raises(ValueError):
        pooled_grid(4, 4, 0)


def _bilinear_axis(k: int, n_in: int, n_out: int) -> tuple[int, int, float]:
    """Source indices and weight of output cell ``k`` (align_corners=False, half-pixel centres clamped at 0)."""
    src = max((k + 0.5) * n_in / n_out - 0.5, 0.0)
    lo = min(math.floor(src), n_in - 1)
    return lo, min(lo + 1, n_in - 1), src - lo


def _naive_pool(x: torch.Tensor, h: int, w: int, s: int, mode: str) -> torch.Tensor:
    grid = x.reshape(h, w, -1)
    oh, ow = -(-h // s), -(-w // s)
    out = torch.empty(oh, ow, grid.shape[-1], dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            if mode in ("average", "max"):
                rows = range(i * s, min((i + 1) * s, h))
                cols = range(j * s, min((j + 1) * s, w))
                stack = torch.stack([grid[r, c] for r in rows for c in cols])
                out[i, j] = stack.mean(0) if mode == "average" else stack.max(0).values
            else:
                r0, r1, fr = _bilinear_axis(i, h, oh)
                c0, c1, fc = _bilinear_axis(j, w, ow)
                top = grid[r0, c0] * (1 - fc) + grid[r0, c1] * fc
                bottom = grid[r1, c0] * (1 - fc) + grid[r1, c1] * fc
                out[i, j] = top * (1 - fr) + bottom * fr
    return out.reshape(oh * ow, -1)


@pytest.mark.parametrize("mode", ["average", "max", "bilinear"])
@pytest.mark.parametrize(
    ("h", "w", "s"), [(8, 8, 2), (9, 7, 2), (16, 12, 4), (9, 9, 4), (5, 3, 4), (3, 2, 8), (6, 6, 1)]
)
def test_pool_slot_matches_naive_loop(mode: str, h: int, w: int, s: int) -> None:
    g = torch.Generator().manual_seed(h * 100 + w * 10 + s)
    x = torch.randn(h * w, 5, generator=g, dtype=torch.float64)
    got = pool_slot(x, h, w, s, mode)
    oh, ow = pooled_grid(h, w, s)
    assert got.shape == (oh * ow, 5)
    torch.testing.assert_close(got, _naive_pool(x, h, w, s, mode), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["average", "max", "bilinear"])
def test_pool_video_features_is_differentiable(mode: str) -> None:
    grid = torch.tensor([[2, 6, 8], [1, 4, 4]])
    feats = torch.randn(2 * 3 * 4 + 2 * 2, 4, requires_grad=True)
    pooled, counts = pool_video_features(feats, grid, 2, [[True, False], [False]], 2, 4, mode)
    assert counts == [[4, 1], [1]] and pooled.shape == (6, 4)
    pooled.sum().backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        pool_video_features(feats[:-1], grid, 2, [[True, False], [False]], 2, 4, mode)
    with pytest.raises(ValueError):
        pool_video_features(feats, grid, 2, [[True], [False]], 2, 4, mode)


@pytest.mark.parametrize("mode", ["average", "max", "bilinear"])
@pytest.mark.parametrize(("side", "s"), [(16, 1), (16, 2), (16, 4), (9, 2), (9, 4), (5, 4), (3, 8), (7, 3)])
def test_pooled_axis_positions_are_region_centres(mode: str, side: int, s: int) -> None:
    pos = pooled_axis_positions(side, s, mode)
    out = -(-side // s)
    assert len(pos) == out
    assert all(0 <= p < side for p in pos) and pos == sorted(pos)
    if s == 1:
        assert pos == list(range(side))
    for i, p in enumerate(pos):
        if mode == "bilinear":
            assert p == math.floor((i + 0.5) * side / out - 0.5 + 1e-9)
        else:
            r0, r1 = i * s, min((i + 1) * s, side)
            assert p == (r0 + r1 - 1) // 2 and r0 <= p < r1


# --------------------------------------------------------------------------------------
# Tiny models (one per architecture, built once per module)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen2_vl"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    from llamafactory_video.testing.tiny_model import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp(request.param), arch=request.param)
    model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation="sdpa").eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = {
        name: tokenizer.convert_tokens_to_ids(tok)
        for name, tok in [
            ("vs", "<|vision_start|>"),
            ("ve", "<|vision_end|>"),
            ("video", "<|video_pad|>"),
            ("image", "<|image_pad|>"),
            ("pad", "<|endoftext|>"),
        ]
    }
    tps = getattr(model.config.vision_config, "tokens_per_second", None) if request.param == "qwen2_5_vl" else None
    return {"arch": request.param, "model": model, "tokenizer": tokenizer, "ids": ids, "tokens_per_second": tps}


class _PatchProbe(nn.Module):
    """Replaces patch_embed: keeps channel 0/1/2 of the first pixel of each patch (temporal index 0)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, [0, self.stride, 2 * self.stride]].float()


class _TakeFirstOfMergeGroup(nn.Module):
    """Replaces the PatchMerger: one token per merge group, the group's first patch."""

    def __init__(self, unit: int) -> None:
        super().__init__()
        self.unit = unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, self.unit, x.shape[-1])[:, 0]


def test_merged_token_order_matches_vision_tower(tiny: dict) -> None:
    """Processor + vision tower (Qwen2.5-VL window reordering included) emit merged tokens t-major, rows, cols."""
    import numpy as np
    from transformers import Qwen2VLVideoProcessor

    patch, merge, tps = 14, 2, 2
    frames, height, width = 6, 224, 280  # 3 slots, 16 x 20 patches -> 8 x 10 merged (windows of 4 x 4, padded)
    video = np.zeros((frames, height, width, 3), dtype=np.uint8)
    for f in range(frames):
        video[f, :, :, 0] = 40 * (f // 2) + 10
    video[:, :, :, 1] = (20 * (np.arange(height) // (patch * merge)) + 5)[None, :, None]
    video[:, :, :, 2] = (20 * (np.arange(width) // (patch * merge)) + 5)[None, None, :]
    processor = Qwen2VLVideoProcessor(
        size={"shortest_edge": 56 * 56, "longest_edge": height * width},
        patch_size=patch,
        temporal_patch_size=tps,
        merge_size=merge,
    )
    out = processor(videos=[video], return_tensors="pt")
    grid = out["video_grid_thw"]
    assert grid.tolist() == [[3, 16, 20]]

    visual = copy.deepcopy(tiny["model"].model.visual)
    if tiny["arch"] == "qwen2_5_vl":  # the window reordering is really exercised (and undone) for this grid
        window_index, _ = visual.get_window_index(grid)
        assert not torch.equal(window_index, torch.arange(window_index.numel()))
    visual.patch_embed = _PatchProbe(tps * patch * patch)
    visual.blocks = nn.ModuleList()
    visual.merger = _TakeFirstOfMergeGroup(merge * merge)
    with torch.no_grad():
        merged = visual(out["pixel_values_videos"].float(), grid_thw=grid).pooler_output
    mean = torch.tensor(processor.image_mean)
    std = torch.tensor(processor.image_std)
    decoded = torch.round((merged * std + mean) * 255).long()
    t, r, c = torch.meshgrid(torch.arange(3), torch.arange(8), torch.arange(10), indexing="ij")
    expected = torch.stack([40 * t + 10, 20 * r + 5, 20 * c + 5], dim=-1).reshape(-1, 3)
    assert torch.equal(decoded, expected)


# --------------------------------------------------------------------------------------
# Placeholders, features and positions agree
# --------------------------------------------------------------------------------------


def _sequence(ids: dict, tokenizer, parts: list) -> list[int]:
    seq: list[int] = []
    for part in parts:
        if isinstance(part, str):
            seq += tokenizer.encode(part, add_special_tokens=False)
        else:
            kind, n = part
            seq += [ids["vs"]] + [ids[kind]] * n + [ids["ve"]]
    return seq


def _left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for b, row in enumerate(rows):
        input_ids[b, length - len(row) :] = torch.tensor(row)
        mask[b, length - len(row) :] = 1
    return input_ids, mask


def _host_rope(tiny: dict, input_ids, mask, video_grid_thw, image_grid_thw=None, seconds=None):
    ids = tiny["ids"]
    types = torch.zeros_like(input_ids)
    types[input_ids == ids["image"]] = 1
    types[input_ids == ids["video"]] = 2
    kwargs = {"image_grid_thw": image_grid_thw, "video_grid_thw": video_grid_thw, "attention_mask": mask}
    if tiny["arch"] == "qwen2_5_vl" and seconds is not None:
        kwargs["second_per_grid_ts"] = seconds
    return tiny["model"].model.get_rope_index(input_ids, mm_token_type_ids=types, **kwargs)


def _batch(tiny: dict, counts_per_video: list[int], image_tokens: int | None = None):
    """Sample 0: text, video 0, text, video 1, text; sample 1: text, [image], video 2, text (left-padded)."""
    ids, tok = tiny["ids"], tiny["tokenizer"]
    row0 = _sequence(
        ids,
        tok,
        ["Describe the video.", ("video", counts_per_video[0]), "and", ("video", counts_per_video[1]), "The end."],
    )
    parts1: list = ["What is happening?"]
    if image_tokens is not None:
        parts1.append(("image", image_tokens))
    parts1 += [("video", counts_per_video[2]), "A man"]
    row1 = _sequence(ids, tok, parts1)
    return _left_pad([row0, row1], ids["pad"])


GRIDS = torch.tensor([[3, 8, 12], [4, 18, 10], [2, 6, 6]])  # merged 4x6, 9x5, 3x3
PATTERNS = [[True, False, True], [True, True, False, False], [False, True]]


@pytest.mark.parametrize("with_image", [False, True])
def test_rope_matches_host_at_stride_1(tiny: dict, with_image: bool) -> None:
    counts = slot_token_counts(GRIDS, 2, PATTERNS, 1, 1)
    assert [sum(c) for c in counts] == (GRIDS.prod(-1) // 4).tolist()
    image_grid = torch.tensor([[1, 4, 6]]) if with_image else None
    input_ids, mask = _batch(tiny, [sum(c) for c in counts], 6 if with_image else None)
    seconds = torch.tensor([1.0, 2.0, 0.5])  # 0.5 s exercises the host's int() truncation
    host_pos, host_delta = _host_rope(tiny, input_ids, mask, GRIDS, image_grid, seconds)
    for patterns in (PATTERNS, None):
        pos, delta = rope_position_ids(
            input_ids,
            mask,
            GRIDS,
            patterns,
            tiny["ids"]["video"],
            slow_stride=1,
            fast_stride=1,
            spatial_merge_size=2,
            tokens_per_second=tiny["tokens_per_second"],
            second_per_grid_ts=seconds,
            image_token_id=tiny["ids"]["image"],
            image_grid_thw=image_grid,
        )
        assert torch.equal(pos, host_pos)
        assert torch.equal(delta, host_delta.to(delta.dtype).reshape(delta.shape))


def _vision_spans(input_ids_row: torch.Tensor, token: int) -> list[tuple[int, int]]:
    flags = (input_ids_row == token).tolist() + [False]
    spans, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        if not f and start is not None:
            spans.append((start, i))
            start = None
    return spans


@pytest.mark.parametrize("mode", ["average", "bilinear"])
@pytest.mark.parametrize(("slow", "fast"), [(2, 4), (1, 4), (4, 8)])
def test_counts_features_and_positions_agree(tiny: dict, mode: str, slow: int, fast: int) -> None:
    """Mixed slow/fast slots, two videos of different sizes in one sample and a third in another sample."""
    ids = tiny["ids"]
    tps = tiny["tokens_per_second"]
    counts = slot_token_counts(GRIDS, 2, PATTERNS, slow, fast)
    grids = slot_grids(GRIDS, 2, PATTERNS, slow, fast)
    assert counts == [[h * w for h, w in g] for g in grids]
    input_ids, mask = _batch(tiny, [sum(c) for c in counts])

    # 1. placeholders == pooled feature rows, and masked_scatter puts each slot's pooled tokens on its placeholders
    merged = [(t, h // 2, w // 2) for t, h, w in GRIDS.tolist()]
    features = torch.randn(sum(t * h * w for t, h, w in merged), 7, dtype=torch.float64)
    pooled, pooled_counts = pool_video_features(features, GRIDS, 2, PATTERNS, slow, fast, mode)
    assert pooled_counts == counts
    assert int((input_ids == ids["video"]).sum()) == pooled.shape[0] == sum(map(sum, counts))
    embeds = torch.zeros(*input_ids.shape, 7, dtype=torch.float64)
    embeds = embeds.masked_scatter((input_ids == ids["video"]).unsqueeze(-1).expand_as(embeds), pooled)

    # 2. positions: absolute time per slot, same spatial frame, text identical to the unpooled layout
    unpooled_counts = slot_token_counts(GRIDS, 2, PATTERNS, 1, 1)
    ref_ids, ref_mask = _batch(tiny, [sum(c) for c in unpooled_counts])
    ref_pos, _ = rope_position_ids(
        ref_ids, ref_mask, GRIDS, None, ids["video"], spatial_merge_size=2, tokens_per_second=tps
    )
    pos, _ = rope_position_ids(
        input_ids,
        mask,
        GRIDS,
        PATTERNS,
        ids["video"],
        slow_stride=slow,
        fast_stride=fast,
        pool_mode=mode,
        spatial_merge_size=2,
        tokens_per_second=tps,
    )
    text = (input_ids != ids["video"]) & mask.bool()
    ref_text = (ref_ids != ids["video"]) & ref_mask.bool()
    for b in range(2):
        assert torch.equal(pos[:, b, text[b]], ref_pos[:, b, ref_text[b]])

    offset = 0
    video_index = 0
    for b in range(2):
        spans = _vision_spans(input_ids[b], ids["video"])
        ref_spans = _vision_spans(ref_ids[b], ids["video"])
        for (start, end), (ref_start, _) in zip(spans, ref_spans):
            t_count, h, w = merged[video_index]
            strides = slot_strides(PATTERNS[video_index], slow, fast)
            assert end - start == sum(counts[video_index])
            cursor, ref_cursor = start, ref_start
            for t in range(t_count):
                n = counts[video_index][t]
                slot = slice(cursor, cursor + n)
                # features: exactly pool_slot of that slot's unpooled tokens
                raw = features[offset + t * h * w : offset + (t + 1) * h * w]
                torch.testing.assert_close(embeds[b, slot], pool_slot(raw, h, w, strides[t], mode))
                # positions
                ref_slot = ref_pos[:, b, ref_cursor : ref_cursor + h * w]
                got = pos[:, b, slot]
                assert torch.all(got[0] == ref_slot[0, 0])  # absolute time of slot t
                rows = torch.tensor(pooled_axis_positions(h, strides[t], mode))
                cols = torch.tensor(pooled_axis_positions(w, strides[t], mode))
                base = ref_slot[1].min()  # the unpooled slot's spatial origin
                assert torch.equal(got[1], base + rows.repeat_interleave(len(cols)))
                assert torch.equal(got[2], base + cols.repeat(len(rows)))
                ref_hw = set(zip(ref_slot[1].tolist(), ref_slot[2].tolist()))
                assert set(zip(got[1].tolist(), got[2].tolist())) <= ref_hw  # same spatial frame
                cursor += n
                ref_cursor += h * w
            offset += t_count * h * w
            video_index += 1
    assert video_index == 3


def test_rope_time_scaling_and_mismatch_errors(tiny: dict) -> None:
    ids = tiny["ids"]
    grid = torch.tensor([[4, 4, 4]])
    counts = slot_token_counts(grid, 2, [[True, False, True, False]], 1, 2)
    input_ids, mask = _left_pad([_sequence(ids, tiny["tokenizer"], ["Hi", ("video", sum(counts[0])), "ok"])], 0)
    kwargs = {"slow_stride": 1, "fast_stride": 2, "spatial_merge_size": 2, "tokens_per_second": 2}
    start = int((input_ids[0] == ids["video"]).nonzero()[0])
    for seconds, truncate, times in [
        (1.5, True, [0, 2, 4, 6]),  # transformers 5.6: 2 * int(1.5) = 2 per slot
        (1.5, False, [0, 3, 6, 9]),  # original Qwen2.5-VL: floor(t * 1.5 * 2)
        (0.5, True, [0, 0, 0, 0]),
        (0.5, False, [0, 1, 2, 3]),
    ]:
        pos, _ = rope_position_ids(
            input_ids,
            mask,
            grid,
            [[True, False, True, False]],
            ids["video"],
            second_per_grid_ts=[seconds],
            truncate_seconds=truncate,
            **kwargs,
        )
        slot_starts = [start + sum(counts[0][:t]) for t in range(4)]
        first = int(pos[0, 0, start - 1]) + 1
        assert [int(pos[0, 0, s]) - first for s in slot_starts] == times
    # placeholders expanded with the unpooled count while the strides say otherwise: a clear error
    bad_ids, bad_mask = _left_pad([_sequence(ids, tiny["tokenizer"], ["Hi", ("video", 16), "ok"])], 0)
    with pytest.raises(ValueError, match="placeholder"):
        rope_position_ids(bad_ids, bad_mask, grid, [[True, False, True, False]], ids["video"], **kwargs)
    with pytest.raises(ValueError):
        rope_position_ids(bad_ids, bad_mask, torch.tensor([[4, 4, 4], [2, 4, 4]]), None, ids["video"])


# --------------------------------------------------------------------------------------
# Frame-causal block mask
# --------------------------------------------------------------------------------------


def _naive_mask(slot_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    bsz, length = slot_ids.shape
    out = torch.zeros(bsz, 1, length, length, dtype=torch.bool)
    for b in range(bsz):
        for i in range(length):
            if not attention_mask[b, i]:
                out[b, 0, i, i] = True
                continue
            for j in range(length):
                if not attention_mask[b, j]:
                    continue
                si, sj = int(slot_ids[b, i]), int(slot_ids[b, j])
                if si < 0:  # text query: causal
                    ok = j <= i
                elif sj < 0:  # video query, text key: earlier text only
                    ok = j < i
                else:  # video query, video key: own slot or earlier slots, never a later one
                    ok = sj <= si
                out[b, 0, i, j] = ok
    return out


def test_video_slot_ids_and_frame_causal_mask_vs_naive_loop(tiny: dict) -> None:
    ids = tiny["ids"]
    counts = slot_token_counts(GRIDS, 2, PATTERNS, 2, 4)
    input_ids, mask = _batch(tiny, [sum(c) for c in counts])
    slot_ids = video_slot_ids(input_ids, ids["video"], counts)
    # sample 0 holds videos 0 and 1 (slots 0..6), sample 1 video 2 (slots 0..1)
    for b, expected in [(0, [0, 1, 2, 3, 4, 5, 6]), (1, [0, 1])]:
        video = slot_ids[b][input_ids[b] == ids["video"]]
        assert sorted(set(video.tolist())) == expected and torch.all(video.diff() >= 0)
    assert torch.all(slot_ids[input_ids != ids["video"]] == -1)
    per_slot = torch.bincount(slot_ids[0][slot_ids[0] >= 0])
    assert per_slot.tolist() == counts[0] + counts[1]

    naive = _naive_mask(slot_ids, mask)
    assert torch.equal(frame_causal_mask(slot_ids, mask), naive)
    additive = frame_causal_mask(slot_ids, mask, dtype=torch.float32)
    assert additive.dtype == torch.float32
    assert torch.equal(additive == 0, naive)
    assert torch.all(additive[~naive] == torch.finfo(torch.float32).min)
    no_pad = frame_causal_mask(slot_ids)
    assert torch.equal(no_pad, _naive_mask(slot_ids, torch.ones_like(mask)))
    with pytest.raises(ValueError):
        video_slot_ids(input_ids, ids["video"], counts[:2])


def test_frame_causal_mask_in_the_language_model_sdpa_and_eager(tiny: dict) -> None:
    ids = tiny["ids"]
    model = tiny["model"]
    lm = model.model.language_model
    counts = slot_token_counts(GRIDS, 2, PATTERNS, 2, 4)
    input_ids, mask = _batch(tiny, [sum(c) for c in counts])
    pos, _ = rope_position_ids(
        input_ids,
        mask,
        GRIDS,
        PATTERNS,
        ids["video"],
        slow_stride=2,
        fast_stride=4,
        tokens_per_second=tiny["tokens_per_second"],
    )
    slot_ids = video_slot_ids(input_ids, ids["video"], counts)
    g = torch.Generator().manual_seed(0)
    embeds = torch.randn(*input_ids.shape, model.config.text_config.hidden_size, generator=g)

    def run(x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return lm(inputs_embeds=x, attention_mask=attn_mask, position_ids=pos).last_hidden_state

    bool_mask = frame_causal_mask(slot_ids, mask)
    float_mask = frame_causal_mask(slot_ids, mask, dtype=torch.float32)
    try:
        sdpa_bool = run(embeds, bool_mask)
        sdpa_float = run(embeds, float_mask)
        model.set_attn_implementation("eager")
        eager = run(embeds, float_mask)
    finally:
        model.set_attn_implementation("sdpa")
    valid = mask.bool()
    assert torch.isfinite(sdpa_bool).all()
    torch.testing.assert_close(sdpa_bool[valid], sdpa_float[valid], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sdpa_bool[valid], eager[valid], rtol=1e-4, atol=1e-4)

    # perturb the last token of slot 3 of sample 0: earlier slots and text do not move, slot 3 (all of it) does
    row = slot_ids[0]
    last = int((row == 3).nonzero()[-1])
    changed = embeds.clone()
    changed[0, last] += 3.0
    diff = (run(changed, bool_mask)[0] - sdpa_bool[0]).abs().amax(-1)
    before = torch.arange(row.shape[0]) < int((row == 3).nonzero()[0])
    assert diff[before].max() < 1e-6
    assert diff[row == 3].min() > 1e-4  # bidirectional within the slot: its first token sees the last one
    assert diff[row == 4].min() > 1e-4  # later slots see it


# --------------------------------------------------------------------------------------
# Reconstruction head and loss
# --------------------------------------------------------------------------------------


def test_reconstruction_loss_matches_naive_and_detaches_target() -> None:
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    p, y = pred.detach().tolist(), target.detach().tolist()
    mse = sum((p[n][d] - y[n][d]) ** 2 for n in range(6) for d in range(5)) / 30
    cos = 0.0
    for n in range(6):
        dot = sum(p[n][d] * y[n][d] for d in range(5))
        cos += 1 - dot / (math.sqrt(sum(v * v for v in p[n])) * math.sqrt(sum(v * v for v in y[n])))
    assert reconstruction_loss(pred, target, "mse").item() == pytest.approx(mse, rel=1e-12)
    assert reconstruction_loss(pred, target, "cosine").item() == pytest.approx(cos / 6, rel=1e-12)
    for kind in ("mse", "cosine"):
        pred.grad = None
        reconstruction_loss(pred, target, kind).backward()
        assert pred.grad is not None and pred.grad.abs().sum() > 0
        assert target.grad is None
    # (P, S, D) inputs flatten to P * S vectors; empty input keeps a graph
    assert reconstruction_loss(pred.reshape(2, 3, 5), target.reshape(2, 3, 5), "mse").item() == pytest.approx(mse)
    empty = reconstruction_loss(pred[:0], target[:0], "cosine")
    assert empty.item() == 0.0 and empty.requires_grad
    with pytest.raises(ValueError):
        reconstruction_loss(pred, target, "l1")


def test_slot_summary_and_next_slot_pairs() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(slot_summary(x, (3, 4), 1), x.mean(0, keepdim=True))
    two = slot_summary(x, (4, 3), 2).reshape(2, 2, 3)
    grid = x.reshape(4, 3, 3)
    torch.testing.assert_close(two[0, 0], grid[0:2, 0:2].reshape(-1, 3).mean(0))  # adaptive: rows 0-1, cols 0-1
    torch.testing.assert_close(two[1, 1], grid[2:4, 1:3].reshape(-1, 3).mean(0))

    grids = slot_grids(GRIDS, 2, PATTERNS, 2, 4)  # slow / fast slots of different sizes
    n = sum(h * w for video in grids for h, w in video)
    hidden = torch.randn(n, 8, generator=g, dtype=torch.float64, requires_grad=True)
    feats = torch.randn(n, 6, generator=g, dtype=torch.float64, requires_grad=True)
    inputs, targets = next_slot_pairs(hidden, feats, grids, size=1)
    assert inputs.shape == (2 + 3 + 1, 1, 8) and targets.shape == (6, 1, 6)
    assert not targets.requires_grad and inputs.requires_grad
    # pair 3 = video 1, slot 0 -> slot 1
    start_v1 = sum(h * w for h, w in grids[0])
    s0 = grids[1][0][0] * grids[1][0][1]
    s1 = grids[1][1][0] * grids[1][1][1]
    torch.testing.assert_close(inputs[2, 0], hidden[start_v1 : start_v1 + s0].mean(0))
    torch.testing.assert_close(targets[2, 0], feats[start_v1 + s0 : start_v1 + s0 + s1].mean(0).detach())

    head = ReconstructionHead(8, 6, mlp_hidden_size=16).double()
    loss = reconstruction_loss(head(inputs), targets, "cosine")
    loss.backward()
    assert feats.grad is None and hidden.grad is not None
    assert all(p.grad is not None for p in head.parameters())
    with pytest.raises(ValueError):
        next_slot_pairs(hidden[:-1], feats, grids)
