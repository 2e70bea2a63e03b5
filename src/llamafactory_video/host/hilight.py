r"""HiLight in the host: transformers auto classes, the ``hilight`` mm_plugin and templates, and the composite-model
keys LlamaFactory's freezing reads.

* transformers (on ``llamafactory.model.loader``): ``AutoConfig`` ``hilight`` -> ``HiLightConfig``;
  ``AutoModelForImageTextToText`` / ``AutoModel`` -> ``HiLightForConditionalGeneration`` (0.9.5's ``load_model``
  picks ``AutoModelForImageTextToText`` when the config type is in its mapping); ``AutoProcessor`` ->
  ``HiLightProcessor``. No ``trust_remote_code``: the classes live in this package.
* LlamaFactory composite model ``hilight`` (on ``llamafactory.model.loader``, in ``model_utils.visual``): projector
  ``token_mining``, vision ``video_tower`` + ``frame_tower``, language ``language_model``; so
  ``freeze_vision_tower`` / ``freeze_multi_modal_projector`` / ``freeze_language_model`` drive full / freeze
  tuning and LoRA never wraps the towers or TokenMining (``additional_target: token_mining`` trains it whole).
* mm_plugin ``hilight`` (on ``llamafactory.data.mm_plugin``): each ``<video>`` -> ``num_frames`` copies of the
  video token; pixel inputs from the host's ``_regularize_videos`` (``video_fps`` / ``video_maxlen`` sampling,
  our frame sampler / cache when set), resampled to ``num_frames`` by the processor.
* templates (on ``llamafactory.data.template``): ``hilight`` (Gemma turns: the seed's Gemma-2B, and the name the
  recipes use) and ``hilight_qwen`` (ChatML turns, Qwen LLMs), both with the ``hilight`` mm_plugin.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import ModuleType

from .video import sample_videos

PLUGIN_NAME = "hilight"
TEMPLATE_NAMES = ("hilight", "hilight_qwen")
COMPOSITE_KEYS = {
    "projector_keys": ["token_mining"],
    "vision_model_keys": ["video_tower", "frame_tower"],
    "language_model_keys": ["language_model"],
}


def register_optional_towers() -> None:
    r"""Video towers of this package that HiLight may wrap: CLIP-ViP (``host/clip_vip.py`` registers ``clip_vip``
    with ``AutoConfig`` / ``AutoModel``)."""
    from .clip_vip import register_clip_vip

    register_clip_vip()


def register_transformers() -> None:
    r"""Register the HiLight classes with transformers' auto classes (idempotent), and the optional towers."""
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    from ..model.hilight import HiLightConfig, HiLightForConditionalGeneration, HiLightProcessor

    AutoConfig.register(HiLightConfig.model_type, HiLightConfig, exist_ok=True)
    AutoModelForImageTextToText.register(HiLightConfig, HiLightForConditionalGeneration, exist_ok=True)
    AutoModel.register(HiLightConfig, HiLightForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(HiLightConfig, HiLightProcessor, exist_ok=True)
    register_optional_towers()


def register_composite_model(visual: ModuleType) -> None:
    r"""``visual`` is ``llamafactory.model.model_utils.visual``."""
    if "hilight" not in visual.COMPOSITE_MODELS:
        visual._register_composite_model(model_type="hilight", **COMPOSITE_KEYS)


def make_plugin_class(mm_plugin: ModuleType) -> type:
    r"""The ``hilight`` plugin class, derived from the host's ``BasePlugin``."""

    @dataclass
    class HiLightPlugin(mm_plugin.BasePlugin):
        def process_messages(self, messages, images, videos, audios, processor):
            self._validate_input(processor, images, videos, audios)
            self._validate_messages(messages, images, videos, audios)
            if len(videos) == 0:
                return messages
            num_frames = getattr(processor, "num_frames", None)
            if num_frames is None:
                raise ValueError(
                    "template `hilight` needs a HiLight processor (num_frames); build the model with "
                    "`llamafactory-video hilight-build`"
                )
            copies = num_frames if self.expand_mm_tokens else 1
            messages = copy.deepcopy(messages)
            for message in messages:
                message["content"] = message["content"].replace(mm_plugin.VIDEO_PLACEHOLDER, self.video_token * copies)
            return messages

        def _get_mm_inputs(self, images, videos, audios, processor, **kwargs):
            if len(videos) == 0:
                return {}
            frames = sample_videos(self, videos, processor)
            counts = sorted({len(f) for f in frames})
            if counts != [processor.num_frames]:
                from .._logging import get_logger

                get_logger(__name__).warning_rank0_once(
                    f"HiLight takes {processor.num_frames} frames a video; the host sampled {counts} (video_fps / "
                    f"video_maxlen), so frames are resampled evenly (repeated when too few). Set video_maxlen: "
                    f"{processor.num_frames} and a video_fps that reaches it to feed distinct frames."
                )
            return processor.video_inputs(frames)

        def get_mm_inputs(self, images, videos, audios, imglens, vidlens, audlens, batch_ids, processor):
            self._validate_input(processor, images, videos, audios)
            return self._get_mm_inputs(images, videos, audios, processor)

    HiLightPlugin.__qualname__ = HiLightPlugin.__name__ = "HiLightPlugin"
    return HiLightPlugin


def patch_mm_plugin(module: ModuleType) -> None:
    r"""``module`` is ``llamafactory.data.mm_plugin``: add the ``hilight`` plugin to ``PLUGINS``."""
    if PLUGIN_NAME not in module.PLUGINS:
        module.register_mm_plugin(PLUGIN_NAME, make_plugin_class(module))


def patch_template(module: ModuleType) -> None:
    r"""``module`` is ``llamafactory.data.template``: ``hilight`` (Gemma turns), ``hilight_qwen`` (ChatML)."""
    from ..model.hilight.configuration import HILIGHT_VIDEO_TOKEN

    mm = module.get_mm_plugin
    if "hilight_qwen" not in module.TEMPLATES:
        module.register_template(
            name="hilight_qwen",
            format_user=module.StringFormatter(
                slots=["<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n"]
            ),
            format_assistant=module.StringFormatter(slots=["{{content}}<|im_end|>\n"]),
            format_system=module.StringFormatter(slots=["<|im_start|>system\n{{content}}<|im_end|>\n"]),
            stop_words=["<|im_end|>"],
            replace_eos=True,
            mm_plugin=mm(name=PLUGIN_NAME, video_token=HILIGHT_VIDEO_TOKEN),
        )
    if "hilight" not in module.TEMPLATES:
        module.register_template(
            name="hilight",
            format_user=module.StringFormatter(
                slots=["<start_of_turn>user\n{{content}}<end_of_turn>\n<start_of_turn>model\n"]
            ),
            format_assistant=module.StringFormatter(slots=["{{content}}<end_of_turn>\n"]),
            format_system=module.StringFormatter(slots=["{{content}}\n\n"]),
            format_prefix=module.EmptyFormatter(slots=[{"bos_token"}]),
            stop_words=["<end_of_turn>"],
            replace_eos=True,
            template_class=module.Llama2Template,
            mm_plugin=mm(name=PLUGIN_NAME, video_token=HILIGHT_VIDEO_TOKEN),
        )


def patch_model_loader(module: ModuleType) -> None:
    r"""``module`` is ``llamafactory.model.loader`` (its import has loaded ``model_utils.visual``)."""
    import sys

    register_transformers()
    register_composite_model(sys.modules["llamafactory.model.model_utils.visual"])
