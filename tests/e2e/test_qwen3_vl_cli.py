"""Qwen3-VL (template ``qwen3_vl``) through the stock llamafactory-cli: each stage the family layer declares for
it trains a few steps on the session's tiny Qwen3-VL, saves, reloads and predicts. ``docs/families.md``'s coverage
table is checked against this file (``tests/unit/test_families_coverage.py``): one test per "yes" cell, named
``test_<stage>_on_qwen3_vl``."""

import os

import pytest

from .helpers import action_cls_config, read_json, read_jsonl, run_cli


pytestmark = pytest.mark.e2e


def test_action_cls_on_qwen3_vl(tiny_qwen3vl, action_data, tmp_path):
    r"""LoRA + head with pooled video tokens (``video_token_pool_stride: 2``, per-slot timestamps kept): trains,
    saves the adapter and the head, predicts; a reload from the adapter predicts the same labels."""
    workdir = str(tmp_path)
    out = os.path.join(workdir, "out")
    config = action_cls_config(
        tiny_qwen3vl,
        action_data["output_dir"],
        out,
        template="qwen3_vl",
        video_token_pool_stride=2,
        max_samples=16,
        max_steps=8,
        logging_steps=2,
        save_steps=1000,
        preprocessing_num_workers=1,
    )
    config.pop("num_train_epochs", None)
    run_cli(config, workdir, "train")
    for name in ("adapter_model.safetensors", "action_decoder.safetensors", "action_predictions.jsonl",
                 "eval_results.json"):
        assert os.path.isfile(os.path.join(out, name)), name
    state = read_json(os.path.join(out, "trainer_state.json"))
    losses = [e["action_cls/loss_cls"] for e in state["log_history"] if "action_cls/loss_cls" in e]
    assert len(losses) >= 2 and all(loss == loss for loss in losses)
    before = read_jsonl(os.path.join(out, "action_predictions.jsonl"))
    assert len(before) == 16

    reload_out = os.path.join(workdir, "reload")
    reload = dict(config, output_dir=reload_out)
    run_cli(reload, workdir, "reload", overrides=["do_train=false", "do_eval=false", f"adapter_name_or_path={out}"])
    after = read_jsonl(os.path.join(reload_out, "action_predictions.jsonl"))
    assert [r["prediction"] for r in after] == [r["prediction"] for r in before]
    for a, b in zip(after, before):
        assert a["top5"][0]["prob"] == pytest.approx(b["top5"][0]["prob"], abs=1e-4)


def test_scst_on_qwen3_vl(tiny_qwen3vl, caption_data, tmp_path):
    r"""LoRA SCST (greedy baseline, K = 2) from the tiny Qwen3-VL: trains (finite rewards and losses, the
    teacher-forced pass over K repeated videos with ``mm_token_type_ids``), saves the adapter, predicts captions;
    a reload of the adapter predicts the same greedy captions."""
    from .test_scst_cli import scst_config

    out = str(tmp_path / "scst")
    config = scst_config(
        tiny_qwen3vl,
        caption_data,
        out,
        template="qwen3_vl",
        finetuning_type="lora",
        lora_rank=4,
        scst_num_samples=2,
        scst_max_new_tokens=6,
        max_new_tokens=6,
        max_steps=2,
        logging_steps=1,
        per_device_train_batch_size=2,
        max_samples=4,
        do_eval=False,
        do_predict=True,
        plot_loss=False,
    )
    run_cli(config, str(tmp_path), "scst")
    assert os.path.isfile(os.path.join(out, "adapter_model.safetensors"))
    logs = [e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "scst/reward_mean" in e]
    assert len(logs) == 2 and all(e["loss"] == e["loss"] and e["scst/reward_mean"] >= 0 for e in logs)
    before = read_jsonl(os.path.join(out, "predict_captions.jsonl"))
    assert len(before) == 4

    reload_out = str(tmp_path / "reload")
    reload = dict(config, output_dir=reload_out, finetuning_type="lora")
    run_cli(reload, str(tmp_path), "reload", overrides=["do_train=false", f"adapter_name_or_path={out}"])
    after = read_jsonl(os.path.join(reload_out, "predict_captions.jsonl"))
    assert [r["caption"] for r in after] == [r["caption"] for r in before]
