"""LLaVA-NeXT-Video videos in the host: ``LlavaNextVideoPlugin._get_mm_inputs`` calls the video processor as
transformers 5.6 accepts it.

LlamaFactory 0.9.5's ``BasePlugin._get_mm_inputs`` (which ``LlavaNextVideoPlugin`` inherits) calls
``video_processor(images=None, videos=..., return_tensors="pt")`` whenever ``preprocess`` has a ``videos``
parameter; transformers 5.6's ``LlavaNextVideoVideoProcessor`` has one and rejects the ``images`` key
(``TypeError: VideosKwargs.__init__() got an unexpected keyword argument 'images'``), so no sample with a video
can be encoded, stock ``sft`` included. :func:`patch_llava_next_video_plugin` lets the host encode images and
audios and encodes the videos itself with ``video_processor(videos=...)`` (the same frames: the host's
``_regularize_videos`` with the same keys).

Videos of different frame counts (a batch of clips of different lengths: the host samples ``video_fps`` frames a
second up to ``video_maxlen``) cannot be stacked into ``pixel_values_videos`` ``(B, F, C, H, W)``; the stock code
would raise there too. They are packed as one row ``(1, sum F, C, H, W)`` instead: the model runs the frames
through the tower one by one, concatenates every video's pooled features in order and scatters them into the
``<video>`` tokens in order, so the packed row gives each sample its own frames' features. Equal frame counts keep
the ``(B, F, C, H, W)`` layout.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def stack_or_pack(videos: list) -> Any:
    r"""``F_i x (C, H, W)`` frames of each video -> ``(B, F, C, H, W)`` when every ``F_i`` is equal, else the
    frames of all videos in order as one row ``(1, sum F_i, C, H, W)``."""
    import torch

    videos = [torch.as_tensor(v) for v in videos]
    if len({tuple(v.shape) for v in videos}) == 1:
        return torch.stack(videos, dim=0)
    return torch.cat(videos, dim=0).unsqueeze(0)


def patch_llava_next_video_plugin(module: ModuleType) -> None:
    r"""Wrap ``module.LlavaNextVideoPlugin._get_mm_inputs`` (``module`` is ``llamafactory.data.mm_plugin``)."""
    plugin_cls = getattr(module, "LlavaNextVideoPlugin", None)
    if plugin_cls is None or "_get_mm_inputs" in vars(plugin_cls):
        return  # gone, or the host defines its own now: nothing to fix here
    original = plugin_cls._get_mm_inputs

    def _get_mm_inputs(self, images, videos, audios, processor, **kwargs):
        mm_inputs = original(self, images, [], audios, processor, **kwargs)
        if len(videos) != 0:
            video_processor = getattr(processor, "video_processor", None) or processor.image_processor
            frames = self._regularize_videos(
                videos,
                image_max_pixels=getattr(processor, "video_max_pixels", 256 * 256),
                image_min_pixels=getattr(processor, "video_min_pixels", 16 * 16),
                video_fps=getattr(processor, "video_fps", 2.0),
                video_maxlen=getattr(processor, "video_maxlen", 128),
            )["videos"]
            mm_inputs["pixel_values_videos"] = stack_or_pack(video_processor(videos=frames)["pixel_values_videos"])
        return mm_inputs

    _get_mm_inputs.__wrapped__ = original
    plugin_cls._get_mm_inputs = _get_mm_inputs
