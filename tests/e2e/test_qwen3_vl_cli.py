"""Qwen3-VL (template ``qwen3_vl``) through the stock llamafactory-cli: each stage the family layer declares for
it trains a few steps on the session's tiny Qwen3-VL, saves, reloads and predicts. ``docs/families.md``'s coverage
table is checked against this file (``tests/unit/test_families_coverage.py``): one test per "yes" cell, named in
``Qwen3VLFamily.e2e_tests``."""

import os

import pytest

from .family_checks import check_action_cls
from .helpers import read_json, read_jsonl, run_cli


pytestmark = pytest.mark.e2e


def test_action_cls_on_qwen3_vl(tiny_qwen3vl, action_data, tmp_path):
    r"""LoRA + head with pooled video tokens (``video_token_pool_stride: 2``, per-slot timestamps kept): trains,
    saves the adapter and the head, predicts; a reload from the adapter predicts the same labels."""
    check_action_cls(tiny_qwen3vl, "qwen3_vl", action_data, str(tmp_path), video_token_pool_stride=2)


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


@pytest.fixture(scope="module")
def caption_128(tmp_path_factory) -> dict:
    r"""128 px, 8 frames: on Qwen3-VL (32 px per merged token) 4 slots of 4 x 4 merged tokens per video."""
    from llamafactory_video.testing.synthetic_videos import make_caption_dataset

    return make_caption_dataset(
        str(tmp_path_factory.mktemp("caption_128")), num_classes=3, train_per_class=2, test_per_class=1,
        formats=("mp4",), size=128,
    )


def test_fastslow_ar_on_qwen3_vl(tiny_qwen3vl, caption_128, tmp_path):
    r"""Slow stride 2 / fast stride 4 (S F S F: 4 + 1 + 4 + 1 = 10 tokens instead of 64, each slot keeping its
    timestamp): both losses finite, head + pooling saved; the stock sft predict path reloads the saved model and
    pools its prompts the same way from ``video_pooling.json``."""
    from .test_fastslow_ar_cli import _config, _history

    out = str(tmp_path / "fastslow")
    config = _config(tiny_qwen3vl, caption_128, out, template="qwen3_vl", video_max_pixels=128 * 128, max_steps=4,
                     save_steps=1000, plot_loss=False)
    result = run_cli(config, str(tmp_path), "fastslow")
    assert "10 video tokens instead of 64" in result.stdout + result.stderr
    lm, rec = _history(out, "fastslow/lm_loss"), _history(out, "fastslow/autoregressive_loss")
    assert len(lm) == len(rec) == 4 and all(x == x for x in lm + rec)
    assert set(_history(out, "fastslow/token_ratio")) == {round(10 / 64, 4)}
    for name in ("fastslow_head.safetensors", "video_pooling.json", "model.safetensors"):
        assert os.path.isfile(os.path.join(out, name)), name

    pred = str(tmp_path / "predict")
    predict = dict(
        stage="sft", model_name_or_path=out, do_predict=True, predict_with_generate=True, finetuning_type="full",
        template="qwen3_vl", dataset_dir=caption_128["output_dir"], eval_dataset=caption_128["test_dataset"],
        cutoff_len=512, video_maxlen=8, video_fps=4.0, video_max_pixels=128 * 128, max_new_tokens=6,
        per_device_eval_batch_size=3, output_dir=pred, overwrite_output_dir=True, overwrite_cache=True,
        report_to="none", preprocessing_num_workers=1,
    )
    run_cli(predict, str(tmp_path), "predict")
    rows = read_jsonl(os.path.join(pred, "generated_predictions.jsonl"))
    assert len(rows) == 3
    assert all(row["prompt"].count("<|video_pad|>") == 10 and row["prompt"].count(" seconds>") == 4 for row in rows)
