r"""Qwen2-VL and Qwen2.5-VL (template ``qwen2_vl``): one span of ``<|video_pad|>`` per video, M-RoPE.

Geometry: a video of ``video_grid_thw = (T, H, W)`` (patch units; spatial merge ``m``) is ``T`` temporal slots
of ``H/m x W/m`` LLM tokens, written as ``<|vision_start|>`` + ``T*H*W/m^2`` ``<|video_pad|>`` +
``<|vision_end|>``. M-RoPE: token ``(t, i, j)`` gets ``(p + offset(t), p + i, p + j)``, ``offset(t) = t``
(Qwen2-VL) or ``t * tokens_per_second * int(second_per_grid_t)`` (Qwen2.5-VL, transformers 5.6); the text after
it continues at ``p + max(H, W)/m``. Pooling pools every slot on the merged grid
(:mod:`~llamafactory_video.model.fastslow`), positions are the centres of the pooled regions.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import torch

from ..fastslow import pool_video_features, rope_position_ids, slot_token_counts
from .base import VideoFamily
from .visual_once import EncodedVisual


VISUAL_KEYS = (("pixel_values_videos", "video_grid_thw"), ("pixel_values", "image_grid_thw"))
PER_SAMPLE_KEYS = ("second_per_grid_ts",)
TEXT_TYPE, IMAGE_TYPE, VIDEO_TYPE = 0, 1, 2


def _rows(video_grid_thw: Any) -> list[list[int]]:
    if isinstance(video_grid_thw, torch.Tensor):
        return [[int(x) for x in row] for row in video_grid_thw.tolist()]
    return [[int(x) for x in row] for row in video_grid_thw]


class Qwen2VLFamily(VideoFamily):
    name = "qwen2_vl"
    title = "Qwen2-VL / Qwen2.5-VL"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    templates = ("qwen2_vl",)
    stages = frozenset({"action_cls", "scst", "fastslow_ar"})
    features = frozenset({"video_token_pool_stride"})
    mm_plugins = ("Qwen2VLPlugin",)
    tiny_builder = "qwen2_5_vl"
    pixel_keys = ("pixel_values", "pixel_values_videos")
    vision_tower_path = "visual"
    projector_path = "visual.merger"
    core_attributes = ("visual", "language_model")
    e2e_tests = {
        "action_cls": "tests/e2e/test_action_cls_cli.py::test_learns_the_synthetic_task",
        "scst": "tests/e2e/test_scst_cli.py::test_scst_raises_held_out_cider_of_greedy_captions",
        "fastslow_ar": "tests/e2e/test_fastslow_ar_cli.py::test_fastslow_ar_trains_saves_resumes_and_predicts",
        "video_token_pool_stride": "tests/e2e/test_fastslow_ar_cli.py::test_sft_with_video_token_pool_stride",
    }

    # ------------------------------------------------------------------------------------------- modules
    def tokens_per_second(self, config: Any) -> float | None:
        r"""Qwen2.5-VL's time scale of M-RoPE; ``None`` for Qwen2-VL (one position per slot)."""
        if getattr(config, "model_type", None) != "qwen2_5_vl":
            return None
        return getattr(getattr(config, "vision_config", None), "tokens_per_second", None)

    # ------------------------------------------------------------------------------------------- placeholders
    def merge_size(self, processor_or_core: Any) -> int:
        visual = getattr(processor_or_core, "visual", None)
        if visual is not None:
            return int(visual.spatial_merge_size)
        image_processor = getattr(processor_or_core, "image_processor", processor_or_core)
        return int(image_processor.merge_size)

    def slot_runs(self, video_grid_thw: Any, merge_size: int, pooling: Any = None) -> list[list[int]]:
        r"""Per video, the (pooled) token count of each temporal slot."""
        rows = _rows(video_grid_thw)
        if pooling is None or pooling.is_identity:
            return [[h * w // merge_size**2] * t for t, h, w in rows]
        return slot_token_counts(
            rows, merge_size, pooling.patterns(rows), pooling.slow_stride, pooling.fast_stride
        )

    def placeholder_runs(self, video_grid_thw: Any, merge_size: int, pooling: Any = None) -> list[list[int]]:
        return [[sum(slots)] for slots in self.slot_runs(video_grid_thw, merge_size, pooling)]

    def fastslow_slot_counts(self, video_grid_thw: torch.Tensor, merge_size: int, pooling: Any) -> list[list[int]]:
        return self.slot_runs(video_grid_thw, merge_size, pooling)

    def _video_text(self, plugin: Any, processor: Any, mm_inputs: dict, index: int, runs: list[int]) -> str:
        return f"{plugin.vision_bos_token}{plugin.video_token * runs[0]}{plugin.vision_eos_token}"

    def expand_pooled_videos(self, plugin, module, messages, mm_inputs, processor, pooling):
        merge = self.merge_size(processor)
        image_grid_thw = mm_inputs.get("image_grid_thw", [])
        runs = self.placeholder_runs(mm_inputs["video_grid_thw"], merge, pooling)
        messages = deepcopy(messages)
        num_images = num_videos = 0
        for message in messages:
            content = message["content"]
            while module.IMAGE_PLACEHOLDER in content:
                seqlen = int(image_grid_thw[num_images].prod()) // merge**2
                content = content.replace(
                    module.IMAGE_PLACEHOLDER,
                    f"{plugin.vision_bos_token}{plugin.image_token * seqlen}{plugin.vision_eos_token}",
                    1,
                )
                num_images += 1
            while module.VIDEO_PLACEHOLDER in content:
                text = self._video_text(plugin, processor, mm_inputs, num_videos, runs[num_videos])
                content = content.replace(module.VIDEO_PLACEHOLDER, text, 1)
                num_videos += 1
            message["content"] = content
        return messages

    # ------------------------------------------------------------------------------------------- model side
    def _pool(self, features: torch.Tensor, video_grid_thw: torch.Tensor, merge: int, pooling: Any):
        return pool_video_features(
            features,
            video_grid_thw,
            merge,
            pooling.patterns(video_grid_thw),
            pooling.slow_stride,
            pooling.fast_stride,
            pooling.mode,
        )

    def pool_video_output(self, core, output, video_grid_thw, pooling):
        merge = self.merge_size(core)
        stock = torch.cat(list(output.pooler_output), dim=0)
        pooled, counts = self._pool(stock, video_grid_thw, merge, pooling)
        output.pooler_output = tuple(torch.split(pooled, [sum(c) for c in counts]))
        output.lfv_pooled = pooled
        return output

    def _rope_grids(self, video_grid_thw: Any, pooling: Any) -> tuple[Any, Any]:
        r"""The grids and slot patterns :func:`rope_position_ids` walks, one per placeholder run."""
        return video_grid_thw, pooling.patterns(video_grid_thw)

    def pooled_rope_index(self, core, pooling):
        merge = self.merge_size(core)
        config = core.config
        tokens_per_second = self.tokens_per_second(config)
        video_token_id = self.video_token_id(config)
        image_token_id = self.image_token_id(config)

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
            grids, patterns = (None, None) if video_grid_thw is None else self._rope_grids(video_grid_thw, pooling)
            return rope_position_ids(
                input_ids,
                attention_mask,
                grids,
                patterns,
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

        return get_rope_index

    def rope_index(self, core, inputs):
        return core.get_rope_index(
            inputs["input_ids"],
            inputs.get("mm_token_type_ids"),
            image_grid_thw=inputs.get("image_grid_thw"),
            video_grid_thw=inputs.get("video_grid_thw"),
            second_per_grid_ts=inputs.get("second_per_grid_ts"),
            attention_mask=inputs.get("attention_mask"),
        )[0]

    # ------------------------------------------------------------------------------------------- batches
    def extra_forward_kwargs(self, config, input_ids):
        r"""``mm_token_type_ids`` ``(B, L)``: transformers 5.6's Qwen2-VL / Qwen2.5-VL / Qwen3-VL compute M-RoPE
        positions only from it (0 text, 1 ``<|image_pad|>``, 2 ``<|video_pad|>``, as the processor's
        ``create_mm_token_type_ids``)."""
        types = torch.zeros_like(input_ids, dtype=torch.long)
        image, video = self.image_token_id(config), getattr(config, "video_token_id", None)
        if image is not None:
            types[input_ids == image] = IMAGE_TYPE
        if video is not None:
            types[input_ids == int(video)] = VIDEO_TYPE
        return {"mm_token_type_ids": types}

    def repeat_visual_inputs(self, inputs, repeats, config=None):
        r"""``pixel_values_videos`` ``(sum_i t_i h_i w_i, C)`` is split per sample by ``video_grid_thw``
        ``(B, 3)`` (one video, or image, per sample, as caption data guarantees), each chunk repeated; grids and
        ``second_per_grid_ts`` ``(B,)`` repeated alike."""
        out = {}
        for values_key, grid_key in VISUAL_KEYS:
            if inputs.get(values_key) is None:
                continue
            grid = inputs[grid_key]
            chunks = torch.split(inputs[values_key], grid.prod(-1).tolist(), dim=0)
            out[values_key] = torch.cat([chunk for chunk in chunks for _ in range(repeats)], dim=0)
            out[grid_key] = grid.repeat_interleave(repeats, dim=0)
        for key in PER_SAMPLE_KEYS:
            if inputs.get(key) is not None:
                out[key] = torch.as_tensor(inputs[key]).repeat_interleave(repeats, dim=0)
        return out

    # ------------------------------------------------------------------------------------------- one vision pass
    def _feature_outputs(self, core, inputs):
        r"""``(token_id, stock output)`` of ``get_image_features`` / ``get_video_features`` for each kind present."""
        config = core.config
        if inputs.get("pixel_values") is not None:
            yield self.image_token_id(config), core.get_image_features(
                inputs["pixel_values"], inputs["image_grid_thw"], return_dict=True
            )
        if inputs.get("pixel_values_videos") is not None:
            yield self.video_token_id(config), core.get_video_features(
                inputs["pixel_values_videos"], inputs["video_grid_thw"], return_dict=True
            )

    def encode_visual(self, model, inputs):
        r"""``get_image_features`` / ``get_video_features`` of the core once (each video's merged tokens, ``(N, D)``
        concatenated in batch order, as the stock forward scatters them)."""
        core = self.find_core(model)
        return EncodedVisual(
            {token: torch.cat(list(out.pooler_output), dim=0) for token, out in self._feature_outputs(core, inputs)}
        )

    def precomputed_forward_kwargs(self, model, inputs, embeds):
        r"""Embeddings, attention mask and the explicit M-RoPE positions ``(3, B, L)`` of :meth:`rope_index` (the
        stock forward's own ``get_rope_index``, so a host pooling wrapper applies)."""
        out = super().precomputed_forward_kwargs(model, inputs, embeds)
        out["position_ids"] = self.rope_index(self.find_core(model), inputs)
        return out
