"""Workflow of ``stage: action_cls`` (seed 001), read top to bottom like LlamaFactory's ``run_rm``:
tokenizer, template, label names, dataset, model, head, collator, trainer, train / eval / predict, plots.
"""

import os
from typing import Any, Optional

import torch
from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.data.parser import get_dataset_list
from llamafactory.extras.constants import IGNORE_INDEX
from llamafactory.model import load_model, load_tokenizer
from llamafactory.train.trainer_utils import create_modelcard_and_push
from transformers.integrations import is_deepspeed_zero3_enabled

from ..._logging import get_logger
from ...data.collator import ActionClsDataCollator
from ...data.context import stage_data_context
from ...data.labels import resolve_label_names
from ...data.validation import check_dataset_module
from ...model.action_head import ActionHead, ActionHeadConfig, attach_action_head, load_action_head_files
from ..trainer_utils import record_outputs, train_and_save
from .trainer import METRIC_PREFIX, ActionClsTrainer, ComputeActionMetrics, write_eval_report, write_predictions


logger = get_logger(__name__)


def _label_names(data_args, finetuning_args) -> Optional[list[str]]:
    declared = []
    for names in (data_args.dataset, data_args.eval_dataset):
        if names:
            declared += [getattr(attr, "label_names", None) for attr in get_dataset_list(names, data_args.dataset_dir)]
    return resolve_label_names(finetuning_args.action_label_names, data_args.dataset_dir, declared)


def _saved_head_path(model_args, finetuning_args) -> Optional[str]:
    r"""``action_decoder_path``, else the last adapter / the model directory when it holds a saved head."""
    if finetuning_args.action_decoder_path:
        return finetuning_args.action_decoder_path
    candidates = list(model_args.adapter_name_or_path or [])[-1:] + [model_args.model_name_or_path]
    for path in candidates:
        if path and os.path.isfile(os.path.join(path, "action_decoder.safetensors")):
            return path
    return None


def _new_row_init(model, upto: int) -> torch.Tensor:
    r"""Initial ``<ACTION>`` embedding ``(H,)``: the mean of the rows before it, rescaled to their mean norm.

    The plain mean of many nearly independent rows is tens of times shorter than any real token's embedding (its
    norm shrinks like ``1/sqrt(rows)``); a token that short enters the residual stream as almost nothing and the
    final norm then amplifies every gradient through it. Rescaling keeps the mean's direction at a typical norm.
    """
    weight = model.get_input_embeddings().weight

    def compute(rows: torch.Tensor) -> torch.Tensor:
        rows = rows.detach().float()
        mean = rows.mean(dim=0)
        return (mean * rows.norm(dim=-1).mean() / mean.norm().clamp_min(1e-12)).cpu()

    if is_deepspeed_zero3_enabled():
        import deepspeed  # type: ignore

        with deepspeed.zero.GatheredParameters([weight], modifier_rank=None):
            return compute(weight[:upto])
    return compute(weight[:upto])


def build_action_head(model, tokenizer, model_args, finetuning_args, id2label: dict[int, str]) -> ActionHead:
    hidden_size = model.get_input_embeddings().embedding_dim
    token_id = tokenizer.convert_tokens_to_ids(finetuning_args.action_token)
    config = ActionHeadConfig(
        hidden_size=hidden_size,
        num_classes=finetuning_args.num_action_classes,
        decoder_type=finetuning_args.action_decoder_type,
        decoder_hidden_size=finetuning_args.action_decoder_hidden_size,
        dropout=finetuning_args.action_decoder_dropout,
        action_token=finetuning_args.action_token,
        id2label=id2label,
    )
    head = ActionHead(config, token_id, _new_row_init(model, token_id))
    saved = _saved_head_path(model_args, finetuning_args)
    if saved is not None:
        saved_config, state = load_action_head_files(saved)
        if saved_config is not None and (saved_config.num_classes, saved_config.decoder_type) != (
            config.num_classes,
            config.decoder_type,
        ):
            raise ValueError(
                f"The head saved in `{saved}` is a {saved_config.decoder_type} head over {saved_config.num_classes} "
                f"classes, but this run asks for a {config.decoder_type} head over {config.num_classes}. "
                "Match `action_decoder_type` / `num_action_classes`, "
                "or drop `action_decoder_path` to start a new head."
            )
        head.load_state_dict(state)
        logger.info_rank0(f"Initialised the action head and {config.action_token} embedding from {saved}.")
    head.token_embedding.weight.requires_grad_(finetuning_args.action_token_lr_scale > 0)
    head.to(model.get_input_embeddings().weight.device)
    return attach_action_head(model, head)


def run_action_cls(
    model_args: Any,
    data_args: Any,
    training_args: Any,
    finetuning_args: Any,
    generating_args: Any,
    callbacks: Optional[list[Any]] = None,
) -> None:
    from ...model.families import require

    require("action_cls", data_args.template)  # a family the stage cannot serve is refused before anything loads
    # tokenizer with the <ACTION> special token; the embedding matrix stays frozen (the head owns the row)
    add = list(model_args.add_special_tokens or [])
    if finetuning_args.action_token not in add:
        model_args.add_special_tokens = add + [finetuning_args.action_token]
    if finetuning_args.additional_target is None:
        finetuning_args.additional_target = []  # do not make embed_tokens / lm_head trainable on resize
    tokenizer_module = load_tokenizer(model_args)
    tokenizer = tokenizer_module["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)

    # label names -> number of classes
    names = _label_names(data_args, finetuning_args)
    if finetuning_args.num_action_classes is None:
        if names is None:
            raise ValueError(
                "Set `num_action_classes`, or give class names with `action_label_names` or a `label_names` file in "
                "the dataset's dataset_info.json entry."
            )
        finetuning_args.num_action_classes = len(names)
    if names is not None and len(names) != finetuning_args.num_action_classes:
        raise ValueError(
            f"num_action_classes is {finetuning_args.num_action_classes} but the label-names file lists {len(names)} "
            "classes. Make them agree (or omit num_action_classes to use the file's count)."
        )
    id2label = {i: name for i, name in enumerate(names or [])}

    # dataset: every sample checked before the model is even loaded
    with stage_data_context(finetuning_args):
        dataset_module = get_dataset(
            template, model_args, data_args, training_args, stage="action_cls", **tokenizer_module
        )
    check_dataset_module(dataset_module, finetuning_args.action_invalid_samples, data_args.dataset_dir)

    # model with the head inside the module the Trainer wraps
    model = load_model(tokenizer, model_args, finetuning_args, training_args.do_train)
    head = build_action_head(model, tokenizer, model_args, finetuning_args, id2label)
    logger.info_rank0(
        f"Action head: {head.config.decoder_type} over {head.config.num_classes} classes on "
        f"{head.config.action_token} (id {head.token_embedding.token_id}); "
        f"<ACTION> embedding lr = {training_args.learning_rate * finetuning_args.action_token_lr_scale:g}; "
        f"head-only warm-up for {finetuning_args.action_head_warmup_ratio:.0%} of the steps; "
        f"divergence check: {finetuning_args.action_divergence_check}."
    )

    data_collator = ActionClsDataCollator(
        template=template,
        model=model,
        pad_to_multiple_of=8 if training_args.do_train else None,
        label_pad_token_id=IGNORE_INDEX,
        **tokenizer_module,
    )
    compute_metrics = ComputeActionMetrics(finetuning_args.num_action_classes, id2label)
    trainer = ActionClsTrainer(
        model=model,
        args=training_args,
        finetuning_args=finetuning_args,
        head_config=head.config,
        data_collator=data_collator,
        callbacks=callbacks,
        compute_metrics=compute_metrics,
        **dataset_module,
        **tokenizer_module,
    )

    if training_args.do_train:
        plot_keys = [f"{METRIC_PREFIX}/accuracy", f"{METRIC_PREFIX}/loss_cls", "eval_loss", "eval_accuracy"]
        train_and_save(trainer, training_args, finetuning_args, plot_keys)

    if training_args.do_eval:
        metrics = trainer.evaluate(metric_key_prefix="eval")
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        if trainer.is_world_process_zero() and compute_metrics.last_report is not None:
            write_eval_report(training_args.output_dir, "eval", compute_metrics.last_report)

    if training_args.do_predict:
        predict_dataset = dataset_module["eval_dataset"]
        if isinstance(predict_dataset, dict):
            predict_dataset = next(iter(predict_dataset.values()))
        results = trainer.predict(predict_dataset, metric_key_prefix="predict")
        trainer.log_metrics("predict", results.metrics)
        trainer.save_metrics("predict", results.metrics)
        if trainer.is_world_process_zero():
            path = write_predictions(
                os.path.join(training_args.output_dir, "action_predictions.jsonl"),
                predict_dataset,
                results.predictions,
                results.label_ids,
                id2label,
            )
            logger.info_rank0(f"Saved predictions to {path}.")
            if compute_metrics.last_report is not None:
                write_eval_report(training_args.output_dir, "predict", compute_metrics.last_report)

    record_outputs(trainer, training_args, finetuning_args)
    create_modelcard_and_push(trainer, model_args, data_args, training_args, finetuning_args)
