"""Patches applied right after each hooked LlamaFactory module executes (see ``_bootstrap``).

| host module                      | patch                                                                 |
|----------------------------------|-----------------------------------------------------------------------|
| llamafactory.extras.constants    | LlamaBoard's TRAINING_STAGES gains each registered stage's label      |
| llamafactory.hparams.parser      | FinetuningArguments -> VideoFinetuningArguments (stage choices, keys); |
|                                  | get_train_args refuses resuming another stage's checkpoint (all stages)|
| llamafactory.data.parser         | DatasetAttr.join also reads extra columns and `label_names`           |
| llamafactory.data.loader         | plugin stages: extra columns kept, sample indices, own processor,     |
|                                  | videos probed before training, load errors naming file/sample/key     |
| llamafactory.data.mm_plugin      | each family's plugin: pooled video placeholders when asked (families) |
|                                  | qwen3_vl: each video expanded from its own grid + timestamps (0.9.5  |
|                                  | used the first video's slot count and the message index; qwen3_vl.py)|
|                                  | llava_next_video: videos reach transformers 5.6's video processor     |
|                                  | without the `images=None` it rejects (llava_next_video.py)           |
|                                  | _regularize_videos: decode failures / short files name file + sample |
|                                  | `av` proxy + sample-index hook: our seeking frame sampler;          |
|                                  | _regularize_videos served from the frame cache (video_frame_cache)  |
|                                  | hilight: the `hilight` plugin (<video> -> num_frames tokens; hilight.py)|
| llamafactory.data.template       | templates `hilight` (Gemma) / `hilight_qwen` (ChatML) (hilight.py)    |
| llamafactory.model.loader        | video token pooling (model key or saved json) on processor and model; |
|                                  | load_tokenizer exports video_backend / video_frame_cache to the env   |
|                                  | peft's adapter save resolves a resized vocabulary on composite configs |
|                                  | hilight: transformers auto classes + composite model keys (hilight.py)|
|                                  | transformers' AutoConfig / AutoModel learn `clip_vip` (clip_vip.py)    |
| llamafactory.train.tuner         | _training_function dispatches plugin stages to their workflows        |
| llamafactory.train.trainer_utils | transformers.Trainer resumes full weights with the key conversion and |
|                                  | stops on weights that do not load (every stage, stock ones included)  |
|                                  | label_smoothing_factor shifts labels on decoder-only VLMs as on LMs   |

With ``LLAMAFACTORY_VIDEO_DISABLE=1`` none of these run; ``host/disabled.py`` only wraps the parser's
``_parse_args`` so that a config using our stages or keys fails naming that variable.

Stock stages never reach plugin code paths: each patch defers to the original unless a registered
stage is in play. The exceptions: the checkpoint patch and the label-smoothing shift, transformers bug fixes that
stock stages need as much as ours, and the resume check, which stops a stock stage from auto-resuming a checkpoint
one of our stages wrote.
"""

import sys
from types import ModuleType
from typing import Callable

from .. import registry


PATCHED_FLAG = "__llamafactory_video_patched__"


def patch_constants(module: ModuleType) -> None:
    for spec in registry.STAGES.values():
        module.TRAINING_STAGES.setdefault(spec.label, spec.name)


def patch_hparams_parser(module: ModuleType) -> None:
    from .resume import patch_get_train_args

    patch_get_train_args(module)
    ours = sys.modules.get("llamafactory_video.hparams")
    if ours is not None and not getattr(ours, "INITIALISED", False):
        return  # our hparams module is mid-import (it imported the host first): it installs itself when done
    from .parser import install_into_parser

    install_into_parser(module)


def patch_data_parser(module: ModuleType) -> None:
    from .data import patch_dataset_attr

    patch_dataset_attr(module.DatasetAttr)


def patch_data_loader(module: ModuleType) -> None:
    from .data import patch_loader

    patch_loader(module)


def patch_mm_plugin(module: ModuleType) -> None:
    from .frame_reader import patch_frame_cache, patch_video_reading
    from .llava_next_video import patch_llava_next_video_plugin
    from .pooling import patch_mm_plugin as patch
    from .qwen3_vl import patch_qwen3_vl_plugin
    from .video import patch_regularize_videos

    patch_qwen3_vl_plugin(module)  # first: the pooling wrapper defers to the fixed expansion when not pooling
    patch_llava_next_video_plugin(module)
    patch(module)
    patch_regularize_videos(module)
    patch_video_reading(module)  # our frame sampler (video_backend)
    patch_frame_cache(module)  # outermost: video_frame_cache
    from .hilight import patch_mm_plugin as patch_hilight_plugin

    patch_hilight_plugin(module)  # a new plugin class: inherits the patched _regularize_videos


def patch_template(module: ModuleType) -> None:
    from .hilight import patch_template as patch

    patch(module)


def patch_model_loader(module: ModuleType) -> None:
    import peft.peft_model

    from .frame_reader import patch_model_loader as patch_video_keys
    from .peft_save import patch_peft_model
    from .pooling import patch_model_loader as patch

    patch(module)
    patch_video_keys(module)  # video_backend / video_frame_cache -> environment for every process
    patch_peft_model(peft.peft_model)
    from .clip_vip import register_clip_vip
    from .hilight import patch_model_loader as patch_hilight

    register_clip_vip()  # CLIP-ViP directories load with AutoModel (no trust_remote_code)
    patch_hilight(module)


def patch_tuner(module: ModuleType) -> None:
    from .tuner import patch_training_function

    patch_training_function(module)


def patch_trainer_utils(module: ModuleType) -> None:
    from .checkpoint import patch_trainer

    patch_trainer(module.Trainer)  # the transformers.Trainer every host and plugin trainer derives from
    from .label_smoothing import patch_label_smoothing

    patch_label_smoothing(sys.modules[module.Trainer.__module__])  # transformers.trainer


PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "llamafactory.extras.constants": patch_constants,
    "llamafactory.hparams.parser": patch_hparams_parser,
    "llamafactory.data.parser": patch_data_parser,
    "llamafactory.data.loader": patch_data_loader,
    "llamafactory.data.mm_plugin": patch_mm_plugin,
    "llamafactory.data.template": patch_template,
    "llamafactory.model.loader": patch_model_loader,
    "llamafactory.train.tuner": patch_tuner,
    "llamafactory.train.trainer_utils": patch_trainer_utils,
}


def on_host_module_loaded(name: str, module: ModuleType) -> None:
    patch = PATCHES.get(name)
    if patch is None or getattr(module, PATCHED_FLAG, False):
        return
    patch(module)
    setattr(module, PATCHED_FLAG, True)
