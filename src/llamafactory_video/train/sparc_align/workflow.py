"""Workflow of ``stage: sparc_align`` (seed 002): processor, dataset (the host's loader with this stage's
processor), dual encoder (transformers; LoRA through peft), collator, trainer, train / eval, plots.

LlamaFactory's ``load_model`` / templates are for causal LMs; a CLIP-style dual encoder is loaded with
``transformers.AutoModel`` and its own processor, while datasets still come from ``dataset`` / ``dataset_dir`` /
``dataset_info.json`` through the host's ``get_dataset``.
"""

import dataclasses
import os
from typing import Any

import numpy as np

from llamafactory.data import get_dataset

from ..._logging import get_logger
from ...data.collator import SparcAlignDataCollator
from ...data.context import stage_data_context
from ...data.processor.sparc_align import text_max_length
from ...data.validation import check_dataset_module
from ...hparams import SparcAlignArguments
from ...metrics.plots import plot_log_history, plot_recall_curves
from ...model.dual_encoder import (
    SparcModelConfig,
    VideoTextModel,
    load_backbone,
    lora_target_modules,
    model_type_of,
)
from ..trainer_utils import record_outputs, train_and_save
from .trainer import METRIC_PREFIX, SparcAlignTrainer

logger = get_logger(__name__)


def stage_keys(finetuning_args: Any) -> dict[str, Any]:
    return {f.name: getattr(finetuning_args, f.name) for f in dataclasses.fields(SparcAlignArguments)}


def build_backbone(model_args: Any, finetuning_args: Any, is_trainable: bool):
    r"""The dual encoder from ``model_name_or_path``, towers frozen as asked, LoRA applied under ``lora``."""
    backbone = load_backbone(
        model_args.model_name_or_path, cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code
    )
    model_type_of(backbone)
    trainable = tuple(
        tower
        for tower, frozen in (
            ("text_model", finetuning_args.sparc_freeze_text_tower),
            ("vision_model", finetuning_args.sparc_freeze_vision_tower),
        )
        if not frozen
    )
    if finetuning_args.finetuning_type == "lora" and is_trainable:
        from peft import LoraConfig, get_peft_model

        target = lora_target_modules(backbone, finetuning_args.lora_target, trainable)
        backbone = get_peft_model(
            backbone,
            LoraConfig(
                r=finetuning_args.lora_rank,
                lora_alpha=finetuning_args.lora_alpha,
                lora_dropout=finetuning_args.lora_dropout,
                target_modules=target,
            ),
        )
        backbone.get_base_model().logit_scale.requires_grad_(True)
        logger.info_rank0(f"LoRA rank {finetuning_args.lora_rank} on modules matching {target}.")
    else:
        hf = backbone
        frozen = {  # X-CLIP's frame integration and patch projection belong to its vision tower
            "text_model": ("text_model", "text_projection"),
            "vision_model": (
                "vision_model",
                "visual_projection",
                "mit",
                "prompts_visual_layernorm",
                "prompts_visual_projection",
            ),
        }
        for tower, names in frozen.items():
            if tower not in trainable:
                for name in names:
                    if hasattr(hf, name):
                        getattr(hf, name).requires_grad_(False)
    return backbone


def run_sparc_align(
    model_args: Any,
    data_args: Any,
    training_args: Any,
    finetuning_args: Any,
    generating_args: Any,
    callbacks: list[Any] | None = None,
) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(
        model_args.model_name_or_path, cache_dir=model_args.cache_dir, trust_remote_code=model_args.trust_remote_code
    )
    tokenizer = processor.tokenizer
    training_args.remove_unused_columns = False  # the collator needs `videos` and `video_key`

    # dataset: the host's loader (dataset_info.json, splits, caching), this stage's processor; checked before the
    # model is loaded
    with stage_data_context(finetuning_args):
        dataset_module = get_dataset(
            None, model_args, data_args, training_args, stage="sparc_align", tokenizer=tokenizer, processor=None
        )
    check_dataset_module(
        dataset_module,
        "error",
        data_args.dataset_dir,
        hint="Fix or remove these rows (docs/stages/sparc_align.md, Data format).",
    )

    backbone = build_backbone(model_args, finetuning_args, training_args.do_train)
    model_type = model_type_of(backbone.get_base_model() if hasattr(backbone, "get_base_model") else backbone)
    pad_to = text_max_length(tokenizer, finetuning_args) if model_type == "siglip" else 0
    config = SparcModelConfig(
        model_type=model_type,
        base_model=os.path.abspath(model_args.model_name_or_path)
        if os.path.isdir(model_args.model_name_or_path)
        else model_args.model_name_or_path,
        finetuning_type=finetuning_args.finetuning_type,
        aggregation=finetuning_args.sparc_aggregation,
        max_frames=max(int(model_args.video_maxlen), 1),
        local_layer=finetuning_args.sparc_local_layer,
        video_fps=float(model_args.video_fps),
        video_maxlen=int(model_args.video_maxlen),
        video_max_pixels=int(model_args.video_max_pixels),
        video_min_pixels=int(model_args.video_min_pixels),
        text_max_length=text_max_length(tokenizer, finetuning_args),
        pad_to_max_length=model_type == "siglip",
        stage_keys=stage_keys(finetuning_args),
    )
    model = VideoTextModel(backbone, config, loss_args=finetuning_args)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info_rank0(
        f"Dual encoder {model_type} ({config.aggregation} over frames), local loss at {config.local_layer}; "
        f"trainable params {trainable:,} / {total:,}."
    )

    collator = SparcAlignDataCollator(
        tokenizer=tokenizer,
        image_processor=processor.image_processor,
        video_fps=config.video_fps,
        video_maxlen=config.video_maxlen,
        max_pixels=config.video_max_pixels,
        min_pixels=config.video_min_pixels,
        pad_to_length=pad_to,
    )
    trainer = SparcAlignTrainer(
        model=model,
        args=training_args,
        finetuning_args=finetuning_args,
        processor=processor,
        data_collator=collator,
        callbacks=callbacks,
        tokenizer=tokenizer,
        **dataset_module,
    )

    if training_args.do_train:
        plot_keys = [f"{METRIC_PREFIX}/loss_global", f"{METRIC_PREFIX}/loss_local", f"{METRIC_PREFIX}/temperature"]
        train_and_save(trainer, training_args, finetuning_args, plot_keys)
        if trainer.is_world_process_zero() and finetuning_args.plot_loss:
            plot_log_history(
                trainer.state.log_history,
                ["eval_t2v_r1", "eval_v2t_r1", "eval_t2v_r5", "eval_v2t_r5"],
                training_args.output_dir,
            )

    if training_args.do_eval:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        if trainer.is_world_process_zero() and "eval" in trainer.last_ranks:
            ranks, (num_captions, num_videos), caption_to_video = trainer.last_ranks["eval"]
            path = plot_recall_curves(
                ranks,
                {"text->video": num_videos, "video->text": num_captions},
                os.path.join(training_args.output_dir, "eval_retrieval_curve.png"),
                title=f"held-out retrieval: {num_captions} captions, {num_videos} videos",
                positives={"video->text": np.bincount(caption_to_video, minlength=num_videos).tolist()},
            )
            logger.info_rank0(f"Saved the Recall@K curves to {path}.")

    record_outputs(trainer, training_args, finetuning_args)
