"""Seed 002's numbers in the HiLight recipes (sections 6-7), read from the YAML files and through the host's own
argument parser (the path `llamafactory-cli train / chat <yaml>` takes).

Stage 1 TokenMining pretraining on Valley-703K: stock sft, towers and LLM frozen, TokenMining trained, cosine lr 1e-4,
20 epochs. Stage 2 LoRA, TokenMining frozen: VideoInstruct-100K then the billiards QA set, each cosine lr 2e-5,
3 epochs, batch 2; or Mix101K (both mixed), 2 epochs. Inference: temperature 0.1, max_new_tokens 128 and the seed's
system prompt. (Loading the model needs the `hilight` template and model classes; parsing does not.)"""

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGE1 = "examples/train_full/hilight_stage1_tokenmining_valley.yaml"
STAGE2 = {
    "examples/train_lora/hilight_stage2_videoinstruct.yaml": (["videochatgpt_sft"], 3),
    "examples/train_lora/hilight_stage2_billiards.yaml": (["billiards_qa_train"], 3),
    "examples/train_lora/hilight_stage2_mix101k.yaml": (["videochatgpt_sft", "billiards_qa_train"], 2),
}
INFERENCE = "examples/inference/hilight.yaml"
SEED_SYSTEM_PROMPT = (
    "You need to accurately identify and understand the video I gave you and answer my questions. If the video is "
    "missing key information that you cannot answer please let me know that you cannot answer, don't lie to me."
    "My question is:"
)


def _yaml(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return yaml.safe_load(f)


def _parse_train(rel, tmp_path):
    from llamafactory.hparams import parser
    from transformers import HfArgumentParser

    config = dict(_yaml(rel), output_dir=str(tmp_path), bf16=False)  # no GPU here
    return HfArgumentParser(parser._TRAIN_ARGS).parse_dict(config)


def test_stage1_trains_only_token_mining_with_the_seeds_schedule():
    config = _yaml(STAGE1)
    assert (config["stage"], config["finetuning_type"], config["template"]) == ("sft", "full", "hilight")
    assert config["freeze_vision_tower"] is True and config["freeze_language_model"] is True
    assert config["freeze_multi_modal_projector"] is False
    assert config["dataset"] == "valley" and config["video_maxlen"] == 12
    assert (float(config["learning_rate"]), config["lr_scheduler_type"], config["num_train_epochs"]) == (
        1e-4,
        "cosine",
        20,
    )


@pytest.mark.parametrize("rel", sorted(STAGE2))
def test_stage2_lora_with_the_seeds_schedule(rel):
    datasets, epochs = STAGE2[rel]
    config = _yaml(rel)
    assert (config["stage"], config["finetuning_type"], config["template"]) == ("sft", "lora", "hilight")
    assert config["model_name_or_path"] == _yaml(STAGE1)["output_dir"]  # from the stage 1 model
    assert config["freeze_vision_tower"] is True and config["freeze_multi_modal_projector"] is True  # 7.1
    assert "additional_target" not in config
    assert [d.strip() for d in config["dataset"].split(",")] == datasets
    assert (float(config["learning_rate"]), config["lr_scheduler_type"], config["num_train_epochs"]) == (
        2e-5,
        "cosine",
        epochs,
    )
    assert config["per_device_train_batch_size"] * config.get("gradient_accumulation_steps", 1) == 2
    assert config["video_maxlen"] == 12


def test_billiards_stage_continues_the_videoinstruct_adapter():
    billiards = _yaml("examples/train_lora/hilight_stage2_billiards.yaml")
    first = _yaml("examples/train_lora/hilight_stage2_videoinstruct.yaml")
    assert billiards["adapter_name_or_path"] == first["output_dir"]
    assert billiards.get("create_new_adapter", False) is False  # the same adapter keeps training
    assert "adapter_name_or_path" not in _yaml("examples/train_lora/hilight_stage2_mix101k.yaml")


def test_inference_uses_the_seeds_decoding_and_system_prompt():
    config = _yaml(INFERENCE)
    assert config["template"] == "hilight" and "stage" not in config
    assert config["default_system"] == SEED_SYSTEM_PROMPT
    assert (config["do_sample"], config["temperature"], config["max_new_tokens"]) == (True, 0.1, 128)
    assert config["adapter_name_or_path"] == _yaml("examples/train_lora/hilight_stage2_mix101k.yaml")["output_dir"]


def test_the_host_parser_reads_the_same_values(tmp_path):
    from llamafactory.hparams import parser
    from transformers import HfArgumentParser

    _, _, training, finetuning, _ = _parse_train(STAGE1, tmp_path)
    assert finetuning.stage == "sft" and finetuning.finetuning_type == "full"
    assert (finetuning.freeze_vision_tower, finetuning.freeze_language_model) == (True, True)
    assert finetuning.freeze_multi_modal_projector is False
    assert training.learning_rate == 1e-4 and str(training.lr_scheduler_type.value) == "cosine"
    assert training.num_train_epochs == 20
    for rel, (_, epochs) in STAGE2.items():
        _, data, training, finetuning, _ = _parse_train(rel, tmp_path)
        assert finetuning.finetuning_type == "lora" and finetuning.freeze_multi_modal_projector is True
        assert training.learning_rate == 2e-5 and training.num_train_epochs == epochs
        assert training.per_device_train_batch_size == 2 and data.template == "hilight"
    model, data, _, generating = HfArgumentParser(parser._INFER_ARGS).parse_dict(_yaml(INFERENCE))
    assert data.default_system == SEED_SYSTEM_PROMPT and data.template == "hilight"
    assert (generating.temperature, generating.max_new_tokens, generating.do_sample) == (0.1, 128, True)
