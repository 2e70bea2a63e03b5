r"""LLaVA-NeXT-Video (templates ``llava_next_video``, ``llava_next_video_mistral``, ``llava_next_video_yi``).

Geometry (transformers 5.6, LlamaFactory 0.9.5): LlamaFactory's ``LlavaNextVideoPlugin`` samples ``F`` frames
(``video_fps`` / ``video_maxlen``); the video processor resizes and centre-crops each to the CLIP tower's square
input (336 px, 24 x 24 patches of 14 px in the released models). The model drops the CLS feature
(``vision_feature_select_strategy: default``), projects, and **pools every frame in the model**
(``vision_resampler``: ``spatial_pool_mode`` average / max / conv with ``spatial_pool_stride`` 2, 24 x 24 -> 12 x 12
= 144 tokens). The video is one run of ``F x (P / s)^2`` ``<video>`` tokens (``P`` patches per side, ``s`` the
stride); positions are the text model's 1-D RoPE. ``pixel_values_videos`` is ``(B, F, C, H, W)``: one video per
sample, batched on dim 0.

Our ``video_token_pool_stride`` is refused here: the model already pools with its own ``spatial_pool_stride``
(a config value its weights were trained with; the placeholder count follows it), and our key would pool a second
time on a grid it does not own. ``fastslow_ar`` needs per-slot M-RoPE positions and is refused too.
"""

from __future__ import annotations

from typing import Any

import torch

from .base import VideoFamily
from .visual_once import EncodedVisual


class LlavaNextVideoFamily(VideoFamily):
    name = "llava_next_video"
    title = "LLaVA-NeXT-Video"
    model_types = ("llava_next_video",)
    templates = ("llava_next_video", "llava_next_video_mistral", "llava_next_video_yi")
    stages = frozenset({"action_cls", "scst"})
    features = frozenset()
    mm_plugins = ("LlavaNextVideoPlugin",)
    generate_repeats_visual_inputs = False  # a packed (1, sum F) row would be repeated whole, not per sample
    tiny_builder = "llava_next_video"
    pixel_keys = ("pixel_values", "pixel_values_videos", "image_sizes")
    vision_tower_path = "vision_tower"
    projector_path = "multi_modal_projector"
    core_attributes = ("vision_tower", "vision_resampler", "language_model")
    e2e_tests = {
        "action_cls": "tests/e2e/test_llava_next_video_cli.py::test_action_cls_on_llava_next_video",
        "scst": "tests/e2e/test_llava_next_video_cli.py::test_scst_on_llava_next_video",
    }

    # ------------------------------------------------------------------------------------------- modules
    def video_token_id(self, config: Any) -> int:
        return int(config.video_token_index)

    def image_token_id(self, config: Any) -> int | None:
        return int(config.image_token_index)

    # ------------------------------------------------------------------------------------------- placeholders
    def tokens_per_frame(self, config: Any) -> int:
        r"""``(P / s)^2``: the pooled features of one frame (``P`` = image_size / patch_size, ``s`` =
        ``spatial_pool_stride``), which is also what the host's plugin writes per frame."""
        side = int(config.vision_config.image_size) // int(config.vision_config.patch_size)
        pooled = side // int(config.spatial_pool_stride)
        return pooled * pooled

    # ------------------------------------------------------------------------------------------- batches
    def repeat_visual_inputs(self, inputs: dict[str, Any], repeats: int, config: Any = None) -> dict[str, Any]:
        r"""``pixel_values_videos`` is ``(B, F, C, H, W)``, or ``(1, sum_b F_b, C, H, W)`` when the samples' frame
        counts differ (``host/llava_next_video.py`` packs them): sample ``b`` owns ``F_b = n_b / t`` frames, ``n_b``
        its ``<video>`` count in ``input_ids`` ``(B, L)`` and ``t`` :meth:`tokens_per_frame`. Each sample's frames
        are repeated ``repeats`` times, sample-major (packed again if the counts differ); image ``pixel_values``
        ``(B, patches, C, H, W)`` and ``image_sizes`` ``(B, 2)`` are repeated per row."""
        out = {
            key: torch.as_tensor(inputs[key]).repeat_interleave(repeats, dim=0)
            for key in ("pixel_values", "image_sizes")
            if inputs.get(key) is not None
        }
        videos = inputs.get("pixel_values_videos")
        if videos is None:
            return out
        batch = inputs["input_ids"].shape[0]
        if config is None:
            if videos.shape[0] != batch:
                raise ValueError("LLaVA-NeXT-Video: repeating a packed video batch needs the model config.")
            out["pixel_values_videos"] = videos.repeat_interleave(repeats, dim=0)
            return out
        per_frame = self.tokens_per_frame(config)
        counts = [int(n) // per_frame for n in (inputs["input_ids"] == self.video_token_id(config)).sum(dim=1)]
        chunks = torch.split(videos.flatten(0, 1), counts, dim=0)
        repeated = [chunk for chunk in chunks for _ in range(repeats)]
        if len(set(counts)) == 1:
            out["pixel_values_videos"] = torch.stack(repeated, dim=0)
        else:
            out["pixel_values_videos"] = torch.cat(repeated, dim=0).unsqueeze(0)
        return out

    # ------------------------------------------------------------------------------------------- one vision pass
    def encode_visual(self, model, inputs):
        r"""``get_image_features`` / ``get_video_features`` once (tower, projector and the model's own resampler),
        each video's ``(F, tokens per frame, D)`` flattened, in batch order, as the stock forward scatters them."""
        core = self.find_core(model)
        config = core.config
        features = {}
        if inputs.get("pixel_values") is not None:
            out = core.get_image_features(inputs["pixel_values"], inputs.get("image_sizes"), return_dict=True)
            features[self.image_token_id(config)] = torch.cat(list(out.pooler_output), dim=0)
        if inputs.get("pixel_values_videos") is not None:
            out = core.get_video_features(inputs["pixel_values_videos"], return_dict=True)
            features[self.video_token_id(config)] = torch.cat([f.flatten(0, 1) for f in out.pooler_output], dim=0)
        return EncodedVisual(features)
