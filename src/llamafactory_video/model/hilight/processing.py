r"""``HiLightProcessor``: the tokenizer plus both towers' image processors.

``image_processor`` prepares frames for the video tower, ``frame_image_processor`` for the frame tower (they may
differ in resolution / normalisation). A video (a list of frames, e.g. sampled by LlamaFactory with
``video_fps`` / ``video_maxlen``) is resampled to exactly ``num_frames`` frames (:func:`resample_frame_indices`),
so every video gives ``num_frames`` visual tokens.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from transformers import BatchFeature, ProcessorMixin

from .configuration import HILIGHT_VIDEO_TOKEN


def resample_frame_indices(num_available: int, num_frames: int) -> list[int]:
    r"""``num_frames`` indices into ``num_available`` frames, evenly spaced, first and last included (repeats when
    fewer frames are available than needed). ``num_available >= 1``."""
    if num_available < 1:
        raise ValueError("HiLight: a video with no frames")
    if num_frames == 1:
        return [0]
    return [int(round(x)) for x in np.linspace(0, num_available - 1, num_frames)]


class HiLightProcessor(ProcessorMixin):
    r"""``videos`` (lists of PIL frames) -> ``pixel_values_videos (V, T, C, H, W)`` and ``frame_pixel_values
    (V, T, C, H', W')``; ``text`` -> ``input_ids`` with every ``video_token`` expanded to ``num_frames`` copies."""

    def __init__(
        self,
        image_processor=None,
        frame_image_processor=None,
        tokenizer=None,
        chat_template=None,
        num_frames: int = 12,
        video_token: str = HILIGHT_VIDEO_TOKEN,
        **kwargs,
    ):
        self.num_frames = int(num_frames)
        self.video_token = video_token
        super().__init__(image_processor, frame_image_processor, tokenizer, chat_template=chat_template)

    def video_inputs(self, videos: list[list[Any]]) -> dict[str, Any]:
        r"""``V`` videos (each a list of frames) -> ``{"pixel_values_videos": (V, T, C, H, W), "frame_pixel_values":
        (V, T, C, H', W')}`` with ``T = num_frames``."""
        import torch

        picked = []
        for frames in videos:
            frames = list(frames)
            picked.extend(frames[i] for i in resample_frame_indices(len(frames), self.num_frames))
        out = {}
        for key, proc in (
            ("pixel_values_videos", self.image_processor),
            ("frame_pixel_values", self.frame_image_processor),
        ):
            pixels = torch.as_tensor(np.asarray(proc(images=picked, return_tensors="pt")["pixel_values"]))
            out[key] = pixels.reshape(len(videos), self.num_frames, *pixels.shape[1:])
        return out

    def expand_video_tokens(self, text: str) -> str:
        r"""Every ``video_token`` -> ``num_frames`` copies (call once per text)."""
        return text.replace(self.video_token, self.video_token * self.num_frames)

    def __call__(self, text=None, videos=None, return_tensors: str = "pt", **kwargs) -> BatchFeature:
        data: dict[str, Any] = {}
        if videos is not None:
            data.update(self.video_inputs(videos))
        if text is not None:
            texts = [text] if isinstance(text, str) else list(text)
            data.update(
                self.tokenizer([self.expand_video_tokens(t) for t in texts], return_tensors=return_tensors, **kwargs)
            )
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values_videos", "frame_pixel_values"]
