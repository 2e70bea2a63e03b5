r"""InternVL 2.5 / 3 / 3.5 in the ``-hf`` format (template ``intern_vl``): every video frame is an image.

Geometry (transformers 5.6, LlamaFactory 0.9.5): LlamaFactory's ``InternVLPlugin`` samples ``F`` frames of a video
(``video_fps`` / ``video_maxlen``), resizes each to the vision tower's square input (448 px in the released models)
and writes the video as ``Frame1: <img>`` + ``image_seq_length`` ``<IMG_CONTEXT>`` + ``</img>\nFrame2: ...``: one
placeholder run per frame, all of the image token (there is no video token). The vision tower's patch grid is
pixel-shuffled by ``downsample_ratio`` (0.5: 1024 patches -> 256 tokens) and projected by an MLP. Positions are
1-D RoPE (the text model's own): the frame order lives in the ``FrameN:`` text.

No pooling and no ``fastslow_ar``: ``image_seq_length`` is a fixed property of the processor and of the model
(``config.image_seq_length``), with no per-video grid to pool on, and the frames carry no temporal positions for
slots; both are refused before the model loads.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import VideoFamily
from .visual_once import EncodedVisual


class InternVLFamily(VideoFamily):
    name = "intern_vl"
    title = "InternVL 2.5-3.5 (-hf)"
    model_types = ("internvl",)
    templates = ("intern_vl",)
    stages = frozenset({"action_cls", "scst"})
    features = frozenset()
    mm_plugins = ("InternVLPlugin",)
    generate_repeats_visual_inputs = False  # generate repeat_interleaves pixel_values frame by frame
    tiny_builder = "intern_vl"
    pixel_keys = ("pixel_values",)
    vision_tower_path = "vision_tower"
    projector_path = "multi_modal_projector"
    e2e_tests = {
        "action_cls": "tests/e2e/test_intern_vl_cli.py::test_action_cls_on_intern_vl",
        "scst": "tests/e2e/test_intern_vl_cli.py::test_scst_on_intern_vl",
    }

    # ------------------------------------------------------------------------------------------- modules
    def video_token_id(self, config: Any) -> int:
        r"""Frames are written with the image token ``<IMG_CONTEXT>``; there is no separate video token."""
        return int(config.image_token_id)

    # ------------------------------------------------------------------------------------------- placeholders
    def frame_runs(self, frames_per_video: list[int], image_seq_length: int) -> list[list[int]]:
        r"""Per video, its placeholder runs: one ``<img>...</img>`` run of ``image_seq_length`` tokens per frame."""
        return [[int(image_seq_length)] * int(f) for f in frames_per_video]

    # ------------------------------------------------------------------------------------------- batches
    def repeat_visual_inputs(self, inputs: dict[str, Any], repeats: int, config: Any = None) -> dict[str, Any]:
        r"""``pixel_values`` ``(sum_b F_b, C, H, W)`` holds the frames of all samples in order; sample ``b`` has
        ``F_b = n_b / s`` of them, ``n_b`` its ``<IMG_CONTEXT>`` (``config.image_token_id``) count in
        ``input_ids`` ``(B, L)`` and ``s`` the tokens per frame (``sum_b n_b / sum_b F_b``: every frame has the
        same count). Each sample's frames are repeated ``repeats`` times, sample-major."""
        values = inputs.get("pixel_values")
        if values is None:
            return {}
        if config is None:
            raise ValueError("InternVL: repeating a batch's frames per sample needs the model config.")
        counts = (inputs["input_ids"] == self.video_token_id(config)).sum(dim=1)
        total = int(counts.sum())
        if total == 0 or total % values.shape[0] != 0:
            raise ValueError(f"InternVL batch: {total} image-context tokens do not split over {values.shape[0]} "
                             "frames.")
        per_frame = total // values.shape[0]
        chunks = torch.split(values, [int(c) // per_frame for c in counts.tolist()], dim=0)
        return {"pixel_values": torch.cat([chunk for chunk in chunks for _ in range(repeats)], dim=0)}

    # ------------------------------------------------------------------------------------------- one vision pass
    def encode_visual(self, model, inputs):
        r"""``get_image_features`` of every frame once: ``(F, image_seq_length, D)`` flattened to the rows the
        stock forward scatters into the ``<IMG_CONTEXT>`` tokens."""
        core = self.find_core(model)
        values = inputs.get("pixel_values")
        if values is None:
            return EncodedVisual()
        out = core.get_image_features(pixel_values=values, return_dict=True).pooler_output
        return EncodedVisual({self.video_token_id(core.config): out.flatten(0, 1) if out.dim() == 3 else out})
