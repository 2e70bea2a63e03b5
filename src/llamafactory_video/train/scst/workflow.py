"""Workflow of ``stage: scst`` (seed 000): tokenizer, template, dataset, reward, model, collator, trainer,
train / eval / predict, plots. Start from an XE checkpoint (``adapter_name_or_path`` or a merged model)."""

from typing import Any, Optional

from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
from llamafactory.extras.constants import IGNORE_INDEX
from llamafactory.model import load_model, load_tokenizer
from llamafactory.train.trainer_utils import create_modelcard_and_push

from ..._logging import get_logger
from ...data.collator import ScstDataCollator, sample_key
from ...data.context import stage_data_context
from ...data.validation import check_dataset_module
from ...metrics.captions import tokenize
from ...rewards.cider import CiderDScorer
from ...rewards.registry import RewardSet, build_reward_set
from ..trainer_utils import record_outputs, train_and_save
from .selection import KeepBestPolicy
from .trainer import METRIC_PREFIX, ScstTrainer, write_captions


logger = get_logger(__name__)

INVALID_SAMPLES_HINT = (
    "scst has no key to skip bad samples (`action_invalid_samples` belongs to action_cls): fix or remove these rows "
    "(each needs a non-empty `references` list of captions and a readable video; docs/stages/scst.md, Data format), "
    "or write the data without them with `llamafactory-video check-data --dataset NAME --dataset-dir DIR "
    "--write-clean FILE` and train on that file."
)


def build_reward(train_dataset: Any, finetuning_args: Any) -> RewardSet:
    r"""The weighted rewards of ``scst_rewards`` (or the older ``scst_reward_weights`` / ``scst_length_penalty``);
    CIDEr-D document frequencies over ALL training references, once (the same on every rank)."""
    corpus = {
        sample_key(name, index): refs
        for name, index, refs in zip(
            train_dataset["dataset_name"], train_dataset["sample_index"], train_dataset["references"]
        )
    }
    scorer = CiderDScorer(corpus, tokenize=tokenize)
    logger.info_rank0(
        f"CIDEr-D document frequencies from {scorer.num_documents} training videos "
        f"({sum(len(r) for r in corpus.values())} references)."
    )
    terms, slope = finetuning_args.scst_reward_terms()
    logger.info_rank0("SCST reward: " + " + ".join(f"{w:g} * {name}" for name, w in terms))
    return build_reward_set(
        terms,
        scorer=scorer,
        length_target=finetuning_args.scst_target_length,
        length_slope=slope,
        format_pattern=finetuning_args.scst_format_pattern or "",
    )


def run_scst(
    model_args: Any,
    data_args: Any,
    training_args: Any,
    finetuning_args: Any,
    generating_args: Any,
    callbacks: Optional[list[Any]] = None,
) -> None:
    from ...model.families import require

    family = require("scst", data_args.template)  # a family the stage cannot serve is refused before anything loads
    beams = max(finetuning_args.scst_beam_width if finetuning_args.scst_baseline == "beam" else 1,
                int(getattr(generating_args, "num_beams", 1) or 1))
    if beams > 1 and not family.generate_repeats_visual_inputs:
        raise ValueError(
            f"scst on the {family.name} family ({family.title}) cannot use beam search (scst_baseline: beam with "
            f"scst_beam_width > 1, or num_beams > 1): transformers' generate repeats this family's frames row by row "
            "for the beams, so beams would see other frames. Use scst_baseline: greedy or mean and num_beams: 1."
        )
    tokenizer_module = load_tokenizer(model_args)
    tokenizer = tokenizer_module["tokenizer"]
    tokenizer.padding_side = "left"  # prompts are generated from
    template = get_template_and_fix_tokenizer(tokenizer, data_args)

    with stage_data_context(finetuning_args):
        dataset_module = get_dataset(template, model_args, data_args, training_args, stage="scst", **tokenizer_module)
    check_dataset_module(dataset_module, "error", data_args.dataset_dir, hint=INVALID_SAMPLES_HINT)

    train_dataset = dataset_module.get("train_dataset")
    reward_source = train_dataset if train_dataset is not None else dataset_module["eval_dataset"]
    if isinstance(reward_source, dict):
        reward_source = next(iter(reward_source.values()))
    reward_fn = build_reward(reward_source, finetuning_args)

    model = load_model(tokenizer, model_args, finetuning_args, training_args.do_train)
    eos_ids = [tokenizer.eos_token_id] + [tokenizer.convert_tokens_to_ids(word) for word in template.stop_words]
    eos_ids = list(dict.fromkeys(i for i in eos_ids if i is not None))
    eval_gen_kwargs = generating_args.to_dict(obey_generation_config=True)
    eval_gen_kwargs.pop("skip_special_tokens", None)

    data_collator = ScstDataCollator(
        template=template, model=None, label_pad_token_id=IGNORE_INDEX, **tokenizer_module
    )
    trainer = ScstTrainer(
        model=model,
        args=training_args,
        finetuning_args=finetuning_args,
        reward_fn=reward_fn,
        eval_gen_kwargs=eval_gen_kwargs,
        eos_token_ids=eos_ids,
        data_collator=data_collator,
        callbacks=callbacks,
        **dataset_module,
        **tokenizer_module,
    )

    # train/scst/selection.py (getattr: tools and tests build the stage from a namespace of the older keys)
    if training_args.do_train and getattr(finetuning_args, "scst_keep_best", "none") == "train_reward":
        trainer.add_callback(KeepBestPolicy(trainer, finetuning_args.scst_keep_best_samples))
    if training_args.do_train:
        plot_keys = [
            f"{METRIC_PREFIX}/{k}"
            for k in ("reward_mean", "baseline_reward", "cider_d", "advantage_mean", "sample_length")
        ]
        plot_keys += [f"{METRIC_PREFIX}/rewards/{name}/mean" for name in reward_fn.names] + ["eval_cider"]
        train_and_save(trainer, training_args, finetuning_args, plot_keys)

    for flag, prefix in ((training_args.do_eval, "eval"), (training_args.do_predict, "predict")):
        if not flag:
            continue
        metrics = trainer.evaluate(metric_key_prefix=prefix)
        trainer.log_metrics(prefix, metrics)
        trainer.save_metrics(prefix, metrics)
        if trainer.is_world_process_zero():
            paths = write_captions(
                training_args.output_dir, prefix, trainer.last_eval["records"], trainer.last_eval["report"]
            )
            logger.info_rank0(f"Saved {prefix} captions and metrics to {', '.join(paths)}.")

    record_outputs(trainer, training_args, finetuning_args)
    create_modelcard_and_push(trainer, model_args, data_args, training_args, finetuning_args)
