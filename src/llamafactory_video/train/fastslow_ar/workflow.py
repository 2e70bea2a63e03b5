r"""Workflow of ``stage: fastslow_ar`` (seed 004): tokenizer, pooling, template, dataset, model, head, collator,
trainer, train / eval / predict, plots.

Data are the stock ``sft`` data (any sharegpt / alpaca dataset with ``videos``); the stage changes how videos are
tokenised (slow / fast slots), how they attend (frame-causal mask) and what is learned on top of the LM loss
(next-slot feature reconstruction). ``do_predict`` generates as stock ``sft`` does.
"""

from __future__ import annotations

from typing import Any, Optional

from llamafactory.data import SFTDataCollatorWith4DAttentionMask, get_dataset, get_template_and_fix_tokenizer
from llamafactory.extras.constants import IGNORE_INDEX
from llamafactory.model import load_model, load_tokenizer
from llamafactory.train.sft.metric import ComputeSimilarity
from llamafactory.train.trainer_utils import create_modelcard_and_push

from ..._logging import get_logger
from ...model.fastslow_head import FastslowHeadConfig, attach_head, load_head_state
from ...model.video_pooling import (
    POOLING_FILE,
    VideoPooling,
    attach_to_processor,
    install_on_model,
    merged_side,
    supports_pooling,
)
from ..trainer_utils import record_outputs, train_and_save
from .trainer import METRIC_PREFIX, FastslowTrainer


logger = get_logger(__name__)


def pooling_from_args(finetuning_args: Any) -> VideoPooling:
    return VideoPooling(
        slow_stride=finetuning_args.fastslow_slow_stride,
        fast_stride=finetuning_args.fastslow_fast_stride,
        strategy=finetuning_args.fastslow_sampling_strategy,
        slow_ratio=finetuning_args.fastslow_slow_frame_ratio,
        mode=finetuning_args.fastslow_pool_mode,
    )


def check_run_args(model_args: Any, data_args: Any, training_args: Any, finetuning_args: Any) -> None:
    r"""Everything that would otherwise fail later, checked before any data or model is loaded."""
    if getattr(model_args, "video_token_pool_stride", 1) != 1:
        raise ValueError(
            "`video_token_pool_stride` is the pooling key of the other stages; `fastslow_ar` pools with "
            "`fastslow_slow_stride` / `fastslow_fast_stride`. Remove `video_token_pool_stride`."
        )
    if data_args.packing or data_args.neat_packing:
        raise ValueError(
            "`fastslow_ar` cannot pack sequences: slot ids, the frame-causal mask and the next-slot pairs are per "
            "sample. Set `packing: false` (and `neat_packing: false`)."
        )
    from ...model.families import require

    require("fastslow_ar", data_args.template)  # the family layer says which families the stage serves
    if getattr(model_args, "block_diag_attn", False):
        raise ValueError("`block_diag_attn` builds its own 4-D mask; remove it for `fastslow_ar`.")


def check_attention(model: Any, finetuning_args: Any) -> bool:
    r"""Whether the block mask is used: sdpa and eager take a 4-D mask, flash-attention cannot."""
    if not finetuning_args.fastslow_frame_causal_mask:
        return False
    impl = str(getattr(model.config, "_attn_implementation", None) or "sdpa")
    if not impl.startswith("flash"):
        return True
    if finetuning_args.fastslow_mask_fallback == "causal":
        logger.warning_rank0(
            f"Attention implementation `{impl}` cannot take the frame-causal block mask: training with the plain "
            "causal mask (`fastslow_mask_fallback: causal`)."
        )
        return False
    raise ValueError(
        f"`fastslow_frame_causal_mask: true` needs sdpa or eager attention, but the model uses `{impl}`, which cannot "
        "take a 4-D mask. Set `flash_attn: sdpa`, or `fastslow_mask_fallback: causal` to train with the causal mask, "
        "or `fastslow_frame_causal_mask: false`."
    )


def build_head(model: Any, finetuning_args: Any) -> FastslowHeadConfig:
    text_config = getattr(model.config, "text_config", model.config)
    hidden = int(text_config.hidden_size)
    config = FastslowHeadConfig(
        hidden_size=hidden,
        feature_dim=hidden,  # the PatchMerger projects visual tokens to the LLM width
        mlp_hidden_size=int(finetuning_args.fastslow_head_hidden_size or hidden),
        loss=finetuning_args.fastslow_ar_loss,
        summary_size=int(finetuning_args.fastslow_summary_size),
    )
    head = config.build()
    if finetuning_args.fastslow_head_path:
        head.load_state_dict(load_head_state(finetuning_args.fastslow_head_path))
        logger.info_rank0(f"Initialised the reconstruction head from {finetuning_args.fastslow_head_path}.")
    device = next(model.parameters()).device
    attach_head(model, head.to(device))
    return config


def run_fastslow_ar(
    model_args: Any,
    data_args: Any,
    training_args: Any,
    finetuning_args: Any,
    generating_args: Any,
    callbacks: Optional[list[Any]] = None,
) -> None:
    check_run_args(model_args, data_args, training_args, finetuning_args)
    pooling = pooling_from_args(finetuning_args)

    tokenizer_module = load_tokenizer(model_args)
    tokenizer, processor = tokenizer_module["tokenizer"], tokenizer_module["processor"]
    if processor is None or not supports_pooling(processor):
        raise ValueError(f"`fastslow_ar` needs a multimodal processor; {model_args.model_name_or_path} has none.")
    attach_to_processor(processor, pooling)
    logger.info_rank0(pooling.saving_line(merged_side(processor), video_maxlen=model_args.video_maxlen) + ".")
    template = get_template_and_fix_tokenizer(tokenizer, data_args)

    if training_args.do_predict and not training_args.predict_with_generate:
        logger.info_rank0("`do_predict` generates answers: setting `predict_with_generate: true` as stock sft does.")
        training_args.predict_with_generate = True

    dataset_module = get_dataset(
        template, model_args, data_args, training_args, stage="fastslow_ar", **tokenizer_module
    )
    model = load_model(tokenizer, model_args, finetuning_args, training_args.do_train)
    install_on_model(model, pooling, keep_features=True)
    use_block_mask = check_attention(model, finetuning_args)
    head_config = build_head(model, finetuning_args)

    data_collator = SFTDataCollatorWith4DAttentionMask(
        template=template,
        model=model if not training_args.predict_with_generate else None,
        pad_to_multiple_of=8 if training_args.do_train else None,
        label_pad_token_id=IGNORE_INDEX if data_args.ignore_pad_token_for_loss else tokenizer.pad_token_id,
        block_diag_attn=False,
        neat_packing=False,
        attn_implementation=getattr(model.config, "_attn_implementation", None),
        compute_dtype=model_args.compute_dtype,
        **tokenizer_module,
    )
    gen_kwargs = generating_args.to_dict(obey_generation_config=True)
    gen_kwargs["eos_token_id"] = list(
        dict.fromkeys([tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(w) for w in template.stop_words])
    )
    gen_kwargs["pad_token_id"] = tokenizer.pad_token_id
    metric_module = (
        {"compute_metrics": ComputeSimilarity(tokenizer=tokenizer)} if training_args.predict_with_generate else {}
    )

    trainer = FastslowTrainer(
        pooling=pooling,
        head_config=head_config,
        use_block_mask=use_block_mask,
        model=model,
        args=training_args,
        finetuning_args=finetuning_args,
        data_collator=data_collator,
        callbacks=callbacks,
        gen_kwargs=gen_kwargs,
        **dataset_module,
        **tokenizer_module,
        **metric_module,
    )

    if training_args.do_train:
        plot_keys = [f"{METRIC_PREFIX}/lm_loss", f"{METRIC_PREFIX}/autoregressive_loss", "eval_loss"]
        train_and_save(trainer, training_args, finetuning_args, plot_keys)
        logger.info_rank0(
            f"Saved the reconstruction head and {POOLING_FILE} beside the model in "
            f"{training_args.output_dir}; chat / predict with `adapter_name_or_path` (or the full model) use the same "
            "pooling without extra keys."
        )

    if training_args.predict_with_generate:
        tokenizer.padding_side = "left"
    if training_args.do_eval:
        metrics = trainer.evaluate(metric_key_prefix="eval", **gen_kwargs)
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    if training_args.do_predict:
        results = trainer.predict(dataset_module["eval_dataset"], metric_key_prefix="predict", **gen_kwargs)
        trainer.log_metrics("predict", results.metrics)
        trainer.save_metrics("predict", results.metrics)
        trainer.save_predictions(dataset_module["eval_dataset"], results, generating_args.skip_special_tokens)

    record_outputs(trainer, training_args, finetuning_args)
    create_modelcard_and_push(trainer, model_args, data_args, training_args, finetuning_args)
