"""Seed 000's values in the MSR-VTT recipes, read through the host's own argument parser (the path
`llamafactory-cli train <yaml>` takes): XE label smoothing 0.1; SCST beam-3 baseline, sampling, reward mix and the
length penalty -0.01 * |words - 32|."""

import os

import yaml


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse(name, tmp_path):
    from llamafactory.hparams import parser
    from transformers import HfArgumentParser

    with open(os.path.join(ROOT, "examples", "train_lora", name), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config.update(output_dir=str(tmp_path), bf16=False)  # no GPU here
    return HfArgumentParser(parser._TRAIN_ARGS).parse_dict(config)


def test_xe_recipe_smooths_labels_by_0_1(tmp_path):
    _, _, training_args, finetuning_args, generating_args = parse("qwen2_5vl_xe_msrvtt.yaml", tmp_path)
    assert finetuning_args.stage == "sft" and training_args.label_smoothing_factor == 0.1
    assert training_args.warmup_ratio == 0.1 and str(training_args.lr_scheduler_type.value) == "cosine"
    assert (generating_args.min_new_tokens, generating_args.no_repeat_ngram_size) == (6, 3)
    assert generating_args.repetition_penalty == 1.1
    assert finetuning_args.caption_degeneration_watch == "stop" and str(training_args.eval_strategy.value) == "steps"


def test_scst_recipe_has_the_seeds_baseline_and_length_penalty(tmp_path):
    from llamafactory_video.hparams import parse_reward_weights
    from llamafactory_video.rewards.scst import length_penalty

    _, _, training_args, args, _ = parse("qwen2_5vl_scst_msrvtt.yaml", tmp_path)
    assert args.stage == "scst" and (args.scst_baseline, args.scst_beam_width) == ("beam", 3)
    assert (args.scst_temperature, args.scst_top_p, args.scst_top_k) == (0.7, 0.9, 50)
    assert parse_reward_weights(args.scst_reward_weights) == {"cider_d": 0.7, "bleu_4": 0.3}
    assert (args.scst_length_penalty, args.scst_target_length) == (0.01, 32)
    assert args.scst_sample_log_steps > 0 and 0 < args.scst_degeneration_threshold <= 1
    penalty = length_penalty([" ".join(["w"] * 40), " ".join(["w"] * 32)], args.scst_length_penalty, 32)
    assert penalty.tolist() == [0.08, 0.0]  # subtracted from the reward: -0.01 * |40 - 32|
    assert training_args.learning_rate == 5e-6
