"""XE (stock sft) then `stage: scst` through the stock llamafactory-cli on synthetic captioned videos."""

import json
import os

import pytest

from .helpers import offline_env, read_json, read_jsonl, run_cli, video_run_keys


pytestmark = pytest.mark.e2e

VIDEO = video_run_keys(
    preprocessing_num_workers=2,
)


def scst_config(model_dir, data, out, **overrides):
    config = dict(
        VIDEO,
        model_name_or_path=model_dir,
        stage="scst",
        do_train=True,
        do_eval=True,
        finetuning_type="full",
        scst_num_samples=4,
        scst_baseline="greedy",
        scst_max_new_tokens=16,
        dataset_dir=data["output_dir"],
        dataset=data["train_dataset"],
        eval_dataset=data["test_dataset"],
        output_dir=out,
        logging_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        learning_rate=1e-4,
        num_train_epochs=2,
        lr_scheduler_type="constant",
        do_sample=False,
        max_new_tokens=16,
        plot_loss=True,
    )
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def xe_model(tiny_qwen25vl, caption_data, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("xe"))
    out = os.path.join(workdir, "xe")
    run_cli(
        dict(
            VIDEO,
            model_name_or_path=tiny_qwen25vl,
            stage="sft",
            do_train=True,
            finetuning_type="full",
            dataset_dir=caption_data["output_dir"],
            dataset=caption_data["train_sft_dataset"],
            output_dir=out,
            logging_steps=10,
            per_device_train_batch_size=8,
            learning_rate=3e-3,
            num_train_epochs=2,
            lr_scheduler_type="constant",
        ),
        workdir,
        "xe",
    )
    # a Qwen-like generation_config (top_k 1, top_p 0.001) must not turn the SCST samples into greedy captions
    path = os.path.join(out, "generation_config.json")
    config = read_json(path)
    config.update(do_sample=True, top_k=1, top_p=0.001, temperature=0.01)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    return {"workdir": workdir, "out": out}


def test_scst_raises_held_out_cider_of_greedy_captions(xe_model, caption_data):
    workdir = xe_model["workdir"]
    before = os.path.join(workdir, "before")
    run_cli(scst_config(xe_model["out"], caption_data, before, do_train=False), workdir, "before")
    after = os.path.join(workdir, "after")
    run_cli(scst_config(xe_model["out"], caption_data, after), workdir, "scst")

    cider_before = read_json(os.path.join(before, "eval_results.json"))["eval_cider"]
    cider_after = read_json(os.path.join(after, "eval_results.json"))["eval_cider"]
    assert cider_after > cider_before, (cider_before, cider_after)

    logs = [e for e in read_json(os.path.join(after, "trainer_state.json"))["log_history"] if "scst/reward_mean" in e]
    for key in (
        "reward_std",
        "baseline_reward",
        "advantage_mean",
        "cider_d",
        "bleu_4",
        "sample_length",
        "frac_identical_to_baseline",
    ):
        assert f"scst/{key}" in logs[0], key
    assert max(e["scst/frac_identical_to_baseline"] for e in logs) < 0.9  # sampling settings were not overridden
    rows = read_jsonl(os.path.join(after, "eval_captions.jsonl"))
    assert len(rows) == caption_data["num_test"] and all(r["caption"] and r["references"] for r in rows)
    report = read_json(os.path.join(after, "eval_caption_metrics.json"))
    assert set(report["groups"]) == set(caption_data["categories"])
    assert {"bleu_1", "bleu_4", "rouge_l", "cider"} <= set(report["groups"]["sports"])
    assert os.path.isfile(os.path.join(after, "training_scst_reward_mean.png"))


def test_scst_two_rank_ddp_with_mean_baseline(xe_model, caption_data, tmp_path):
    out = str(tmp_path / "ddp")
    config = scst_config(
        xe_model["out"],
        caption_data,
        out,
        scst_baseline="mean",
        max_steps=2,
        do_eval=False,
        per_device_train_batch_size=2,
        logging_steps=1,
    )
    proc = run_cli(config, str(tmp_path), "ddp", env=offline_env(FORCE_TORCHRUN="1", NPROC_PER_NODE="2"))
    assert "world size: 2" in proc.stdout + proc.stderr
    logs = [e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "scst/reward_mean" in e]
    assert len(logs) == 2 and "scst/frac_identical_to_baseline" not in logs[0]
    assert all(e["scst/degeneration/num_samples"] == 16 for e in logs)  # 2 ranks x batch 2 x K 4, gathered


def test_scst_continues_a_lora_xe_adapter_with_beam_baseline(tiny_qwen25vl, caption_data, tmp_path):
    xe = str(tmp_path / "xe_lora")
    run_cli(
        dict(
            VIDEO,
            model_name_or_path=tiny_qwen25vl,
            stage="sft",
            do_train=True,
            finetuning_type="lora",
            lora_rank=4,
            dataset_dir=caption_data["output_dir"],
            dataset=caption_data["train_sft_dataset"],
            output_dir=xe,
            max_steps=2,
            per_device_train_batch_size=4,
        ),
        str(tmp_path),
        "xe_lora",
    )
    out = str(tmp_path / "scst_lora")
    config = scst_config(
        tiny_qwen25vl,
        caption_data,
        out,
        finetuning_type="lora",
        adapter_name_or_path=xe,
        scst_baseline="beam",
        scst_beam_width=2,
        max_steps=1,
        do_eval=False,
        logging_steps=1,
        per_device_train_batch_size=2,
        plot_loss=False,
    )
    run_cli(config, str(tmp_path), "scst_lora")
    assert os.path.isfile(os.path.join(out, "adapter_model.safetensors"))
    logs = [e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "scst/reward_mean" in e]
    assert len(logs) == 1 and "scst/frac_identical_to_baseline" in logs[0]


def test_scst_trains_qwen2vl(tiny_qwen2vl, caption_data, tmp_path):
    r"""Qwen2-VL needs ``mm_token_type_ids`` in the teacher-forced pass (transformers 5.6 raises without it); the
    greedy baseline and the predict pass run through the same generate settings."""
    out = str(tmp_path / "scst_qwen2vl")
    config = scst_config(
        tiny_qwen2vl,
        caption_data,
        out,
        scst_num_samples=2,
        scst_max_new_tokens=8,
        max_new_tokens=8,
        max_steps=3,
        logging_steps=1,
        per_device_train_batch_size=2,
        do_eval=False,
        do_predict=True,
        plot_loss=False,
    )
    run_cli(config, str(tmp_path), "scst_qwen2vl")
    assert os.path.isfile(os.path.join(out, "model.safetensors"))
    logs = [e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "scst/reward_mean" in e]
    assert len(logs) == 3 and all(e["loss"] == e["loss"] for e in logs)  # finite, not NaN
    rows = read_jsonl(os.path.join(out, "predict_captions.jsonl"))
    assert len(rows) == caption_data["num_test"]
