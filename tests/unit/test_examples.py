"""Every example YAML parses with the host's own argument parser (no unknown or invalid key)."""

import glob
import os

import pytest
import yaml


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "**", "*.yaml"), recursive=True))


def test_examples_exist():
    names = {os.path.relpath(p, ROOT) for p in EXAMPLES}
    assert {
        "examples/demo/action_cls_tiny.yaml",
        "examples/demo/scst_tiny.yaml",
        "examples/train_lora/qwen2_5vl_action_cls_ucf101.yaml",
        "examples/train_lora/qwen2_5vl_scst_msrvtt.yaml",
        "examples/demo/sparc_align_tiny.yaml",
        "examples/train_full/clip_sparc_align.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: os.path.relpath(p, ROOT))
def test_example_parses(path, tmp_path):
    from llamafactory.hparams import parser
    from transformers import HfArgumentParser

    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if "stage" not in config:  # a chat / api / webchat YAML (examples/inference/): the host's inference arguments
        HfArgumentParser(parser._INFER_ARGS).parse_dict(config)
        return
    config.update(output_dir=str(tmp_path), bf16=False, fp16=False)  # this machine has no GPU
    config.pop("deepspeed", None)
    model_args, data_args, training_args, finetuning_args, generating_args = HfArgumentParser(
        parser._TRAIN_ARGS
    ).parse_dict(config)
    assert finetuning_args.stage == config["stage"]
