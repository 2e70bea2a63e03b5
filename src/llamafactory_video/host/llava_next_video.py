"""LLaVA-NeXT-Video videos in the host: ``LlavaNextVideoPlugin._get_mm_inputs`` calls the video processor as
transformers 5.6 accepts it.

LlamaFactory 0.9.5's ``BasePlugin._get_mm_inputs`` (which ``LlavaNextVideoPlugin`` inherits) calls
``video_processor(images=None, videos=..., return_tensors="pt")`` whenever ``preprocess`` has a ``videos``
parameter; transformers 5.6's ``LlavaNextVideoVideoProcessor`` has one and rejects the ``images`` key
(``TypeError: VideosKwargs.__init__() got an unexpected keyword argument 'images'``), so no sample with a video
can be encoded, stock ``sft`` included. :func:`patch_llava_next_video_plugin` lets the host encode images and
audios and encodes the videos itself with ``video_processor(videos=..., return_tensors="pt")`` (the same frames:
the host's ``_regularize_videos`` with the same keys).
"""

from __future__ import annotations

from types import ModuleType


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
            mm_inputs.update(video_processor(videos=frames, return_tensors="pt"))
        return mm_inputs

    _get_mm_inputs.__wrapped__ = original
    plugin_cls._get_mm_inputs = _get_mm_inputs
