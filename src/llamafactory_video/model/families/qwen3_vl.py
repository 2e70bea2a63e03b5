r"""Qwen3-VL (templates ``qwen3_vl`` / ``qwen3_vl_nothink``): per-slot timestamps, interleaved M-RoPE, deepstack.

Geometry (transformers 5.6, LlamaFactory 0.9.5): a video of ``video_grid_thw = (T, H, W)`` (patch 16, spatial merge
``m`` = 2, temporal patch 2) is written slot by slot, each slot as text ``<{s:.1f} seconds>`` (the mean time of its
two frames) + ``<|vision_start|>`` + ``H/m x W/m`` ``<|video_pad|>`` + ``<|vision_end|>``: one placeholder run per
slot. ``get_rope_index`` splits the grid into ``T`` rows ``(1, H, W)``: every run is an image-like block at the
current position ``p`` (time ``p``, height ``p + i``, width ``p + j``; the time order lives in the timestamp
text), after which the position advances by ``max(H, W)/m``; the text model applies the three axes interleaved
(``mrope_section``). The vision tower also returns *deepstack* features (one ``(N, D)`` tensor per level in
``deepstack_visual_indexes``), added to the hidden states of the first decoder layers at the placeholder
positions.

Pooling keeps every slot and its timestamp (so timestamps stay those of the pooled slots) and pools the slot's
``H/m x W/m`` grid: the run gets the pooled count, the merger output and each deepstack level are pooled the same
way, and the run's positions are the centres of the pooled regions (the Qwen2 rule applied to each one-slot run).
The placeholder expansion also fixes two bugs of LlamaFactory 0.9.5's ``Qwen3VLPlugin.process_messages`` on the
pooled path: every video uses its own number of slots and its own timestamps (the stock code takes ``num_frames``
from the first video and indexes the timestamps by message).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from .qwen2_vl import Qwen2VLFamily, _rows
from .visual_once import EncodedVisual, visual_mask


class Qwen3VLFamily(Qwen2VLFamily):
    name = "qwen3_vl"
    title = "Qwen3-VL"
    model_types = ("qwen3_vl",)
    templates = ("qwen3_vl", "qwen3_vl_nothink")
    stages = frozenset({"action_cls", "scst", "fastslow_ar"})
    features = frozenset({"video_token_pool_stride"})
    mm_plugins = ("Qwen3VLPlugin",)
    processor_only_keys = ("video_metadata",)
    tiny_builder = "qwen3_vl"
    e2e_tests = {
        "action_cls": "tests/e2e/test_qwen3_vl_cli.py::test_action_cls_on_qwen3_vl",
        "scst": "tests/e2e/test_qwen3_vl_cli.py::test_scst_on_qwen3_vl",
        "fastslow_ar": "tests/e2e/test_qwen3_vl_cli.py::test_fastslow_ar_on_qwen3_vl",
        "video_token_pool_stride": "tests/e2e/test_qwen3_vl_cli.py::test_action_cls_on_qwen3_vl",
    }

    def tokens_per_second(self, config: Any) -> float | None:
        return None  # time is in the timestamp text; every run starts at offset 0

    # ------------------------------------------------------------------------------------------- placeholders
    def placeholder_runs(self, video_grid_thw, merge_size, pooling=None):
        return self.slot_runs(video_grid_thw, merge_size, pooling)

    def fastslow_slot_counts(self, video_grid_thw, merge_size, pooling):
        r"""One entry per placeholder run (here: per slot), each ``[count]``: slot ids then number the runs on
        through the sample, the timestamp text between them staying text."""
        return [[count] for video in self.slot_runs(video_grid_thw, merge_size, pooling) for count in video]

    def timestamps(self, processor: Any, mm_inputs: dict, index: int, num_slots: int) -> list[float]:
        r"""Seconds of each slot of video ``index`` (the mean time of its frames), from that video's own
        metadata; a video without metadata counts one second per slot."""
        metadata = list(mm_inputs.get("video_metadata") or [])
        if index < len(metadata) and metadata[index] is not None:
            meta = metadata[index]
            indices = getattr(meta, "frames_indices", None)
            fps = getattr(meta, "fps", None)
            if isinstance(meta, dict):
                indices, fps = meta.get("frames_indices"), meta.get("fps")
            if indices is not None and fps:
                merge = int(getattr(processor.video_processor, "temporal_patch_size", 2) or 2)
                stamps = processor._calculate_timestamps(list(indices), float(fps), merge)
                if len(stamps) >= num_slots:
                    return [float(s) for s in stamps[:num_slots]]
        return [float(t) for t in range(num_slots)]

    def _video_text(self, plugin, processor, mm_inputs, index, runs):
        stamps = self.timestamps(processor, mm_inputs, index, len(runs))
        return "".join(
            f"<{stamp:.1f} seconds>{plugin.vision_bos_token}{plugin.video_token * run}{plugin.vision_eos_token}"
            for stamp, run in zip(stamps, runs)
        )

    # ------------------------------------------------------------------------------------------- model side
    def pool_video_output(self, core, output, video_grid_thw, pooling):
        output = super().pool_video_output(core, output, video_grid_thw, pooling)
        deepstack = getattr(output, "deepstack_features", None)
        if deepstack:
            merge = self.merge_size(core)
            output.deepstack_features = [self._pool(level, video_grid_thw, merge, pooling)[0] for level in deepstack]
        return output

    def _rope_grids(self, video_grid_thw, pooling):
        r"""One ``(1, H, W)`` row per slot (as the stock ``get_rope_index`` splits them) with that slot's
        slow / fast flag."""
        rows = _rows(video_grid_thw)
        patterns = pooling.patterns(rows)
        grids = [[1, h, w] for t, h, w in rows for _ in range(t)]
        flags = [[flag] for pattern in patterns for flag in pattern]
        return torch.tensor(grids, dtype=torch.long), flags

    # ------------------------------------------------------------------------------------------- one vision pass
    def encode_visual(self, model, inputs):
        r"""As Qwen2-VL, plus the deepstack features: one ``(N_visual, D)`` tensor per level over all visual
        placeholders of the batch in sequence order (image and video rows interleaved as the stock forward joins
        them when a batch has both)."""
        core = self.find_core(model)
        features, deepstack = {}, {}
        for token, out in self._feature_outputs(core, inputs):
            features[token] = torch.cat(list(out.pooler_output), dim=0)
            deepstack[token] = list(out.deepstack_features or [])
        encoded = EncodedVisual(features)
        levels = [levels for levels in deepstack.values() if levels]
        if len(levels) == 1:
            encoded.deepstack = levels[0]
        elif len(levels) > 1:  # image and video placeholders in one batch: one joint row per visual position
            ids = inputs["input_ids"]
            joint = visual_mask(ids, list(deepstack))
            encoded.deepstack = []
            for per_level in zip(*(deepstack[token] for token in deepstack)):
                level = per_level[0].new_zeros(int(joint.sum()), per_level[0].shape[-1])
                for token, values in zip(deepstack, per_level):
                    level = level.index_put((((ids == token)[joint]).nonzero().squeeze(-1),), values)
                encoded.deepstack.append(level)
        return encoded

    def visual_injection(self, model, encoded, input_ids):
        r"""A forward pre-hook on the decoder stack (PyTorch's hook API on this model instance, removed on exit)
        that hands it ``visual_pos_masks`` ``(B, L)`` and ``deepstack_visual_embeds`` when it runs over the whole
        prompt (``generate``'s first step) or prompt + caption (the teacher-forced pass) of these rows; decoding
        steps (one new token) get nothing, as in the stock model."""
        if not encoded.deepstack:
            return contextlib.nullcontext()
        mask = visual_mask(input_ids, encoded.token_ids)
        decoder = self.language_model(model)

        def hook(module, args, kwargs):
            embeds = kwargs.get("inputs_embeds")
            if embeds is None or kwargs.get("visual_pos_masks") is not None:
                return None
            if embeds.shape[0] != mask.shape[0] or embeds.shape[1] < mask.shape[1]:
                return None
            full = mask
            if embeds.shape[1] > mask.shape[1]:  # prompt + caption: no visual token in the caption
                full = torch.nn.functional.pad(mask, (0, embeds.shape[1] - mask.shape[1]), value=False)
            levels = [level.to(embeds.device, embeds.dtype) for level in encoded.deepstack]
            kwargs = dict(kwargs, visual_pos_masks=full.to(embeds.device), deepstack_visual_embeds=levels)
            return args, kwargs

        @contextlib.contextmanager
        def injected():
            handle = decoder.register_forward_pre_hook(hook, with_kwargs=True)
            try:
                yield
            finally:
                handle.remove()

        return injected()
