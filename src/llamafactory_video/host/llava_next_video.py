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

``LlavaNextVideoPlugin.process_messages`` (0.9.5) writes every ``<video>`` of a sample with the frame count of the
first one (``num_frames = one_video.shape[0]``); the patched one writes each video with its own frame count
(tokens per frame computed as the host does, ``(H/p) (W/p) / 4`` for the model's stride-2 pooling).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .video import sample_videos


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
            frames = sample_videos(self, videos, processor)
            mm_inputs["pixel_values_videos"] = stack_or_pack(video_processor(videos=frames)["pixel_values_videos"])
        return mm_inputs

    _get_mm_inputs.__wrapped__ = original
    plugin_cls._get_mm_inputs = _get_mm_inputs

    if "process_messages" not in vars(plugin_cls):
        return
    original_messages = vars(plugin_cls)["process_messages"]

    def process_messages(self, messages, images, videos, audios, processor):
        if len(videos) == 0 or not self.expand_mm_tokens:
            return original_messages(self, messages, images, videos, audios, processor)
        return expand_per_video(module, self, original_messages, messages, images, videos, audios, processor)

    process_messages.__wrapped__ = original_messages
    plugin_cls.process_messages = process_messages


def video_frame_counts(plugin: Any, videos: list, processor: Any) -> tuple[list[int], int, int]:
    r"""Frames the host samples from each video, and the ``(H, W)`` of a processed frame."""
    video_processor = getattr(processor, "video_processor", None) or processor.image_processor
    frames = sample_videos(plugin, videos, processor)
    first = video_processor(videos=frames[:1])["pixel_values_videos"][0]
    height, width = (int(x) for x in first.shape[-2:])
    return [len(f) for f in frames], height, width


def expand_per_video(module, plugin, original, messages, images, videos, audios, processor):
    r"""The host's expansion with the ``<video>`` placeholders left in place (images expanded as it does), then
    each video written with its own frame count."""
    counts, height, width = video_frame_counts(plugin, videos, processor)
    per_frame = (height // processor.patch_size) * (width // processor.patch_size) // 4  # the host's formula
    marker = "\x00llamafactory_video:video\x00"
    hidden = [dict(m, content=m["content"].replace(module.VIDEO_PLACEHOLDER, marker)) for m in messages]
    out = original(plugin, hidden, images, [], audios, processor)
    index = 0
    for message in out:
        content = message["content"]
        while marker in content:
            content = content.replace(marker, plugin.video_token * (per_frame * counts[index]), 1)
            index += 1
        message["content"] = content
    return out
