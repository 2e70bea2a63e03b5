"""Checks shared by the per-family e2e files (``test_<family>_cli.py``): each stage a family declares trains a few
steps on the session's tiny model through the stock llamafactory-cli, saves, reloads and predicts."""

import os

import pytest

from .helpers import action_cls_config, read_json, read_jsonl, run_cli, write_sharegpt_dataset


SHARED_VIDEOS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "videos")


def check_action_cls(model_dir: str, template: str, action_data: dict, workdir: str, **overrides) -> None:
    r"""LoRA + head, 8 steps on 16 clips: saves the adapter and the head, predicts; a reload from the adapter
    predicts the same labels with the same probabilities."""
    out = os.path.join(workdir, "out")
    config = action_cls_config(
        model_dir,
        action_data["output_dir"],
        out,
        template=template,
        max_samples=16,
        max_steps=8,
        logging_steps=2,
        save_steps=1000,
        preprocessing_num_workers=1,
        **overrides,
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


def check_stock_sft(model_dir: str, template: str, workdir: str) -> None:
    r"""Stock ``sft`` (LoRA, 2 steps) on the shared real mp4 files: two videos of different lengths in one message,
    and a video in the second user turn."""
    long, short = os.path.join(SHARED_VIDEOS, "1.mp4"), os.path.join(SHARED_VIDEOS, "4.mp4")
    rows = [
        {"messages": [{"role": "user", "content": "<video><video>What changes?"},
                      {"role": "assistant", "content": "A man plays the guitar."}], "videos": [long, short]},
        {"messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi."},
                      {"role": "user", "content": "<video>What happens?"},
                      {"role": "assistant", "content": "A man plays."}], "videos": [short]},
    ]
    data_dir = write_sharegpt_dataset(os.path.join(workdir, "data"), "two_videos", rows,
                                      {"messages": "messages", "videos": "videos"})
    out = os.path.join(workdir, "sft")
    config = dict(
        stage="sft", model_name_or_path=model_dir, do_train=True, finetuning_type="lora", lora_target="all",
        template=template, dataset_dir=data_dir, dataset="two_videos", cutoff_len=2048, video_maxlen=6,
        video_fps=1.0, max_steps=2, logging_steps=1, per_device_train_batch_size=2, learning_rate=1e-3,
        output_dir=out, overwrite_output_dir=True, overwrite_cache=True, report_to="none",
        preprocessing_num_workers=1,
    )
    run_cli(config, workdir, "sft")
    losses = [row["loss"] for row in read_jsonl(os.path.join(out, "trainer_log.jsonl")) if "loss" in row]
    assert len(losses) == 2 and all(loss == loss and loss > 0 for loss in losses)
    assert os.path.isfile(os.path.join(out, "adapter_model.safetensors"))


def check_scst(model_dir: str, template: str, caption_data: dict, workdir: str) -> None:
    r"""``scst`` from the base model (LoRA, 2 steps, 2 samples per prompt, greedy baseline): logs its rewards,
    saves the adapter, writes greedy captions; a reload from the adapter writes the same captions. (Repeats of
    samples with clips of different lengths: ``tests/unit/test_beyond_qwen_families.py``.)"""
    out = os.path.join(workdir, "out")
    config = dict(
        model_name_or_path=model_dir, stage="scst", template=template, do_train=True, do_predict=True,
        finetuning_type="lora", lora_target="all", video_maxlen=8, video_fps=2.0, cutoff_len=1024,
        preprocessing_num_workers=1, overwrite_output_dir=True, overwrite_cache=True, report_to="none",
        save_strategy="no", dataset_dir=caption_data["output_dir"], dataset=caption_data["train_dataset"],
        eval_dataset=caption_data["test_dataset"], max_samples=8, scst_num_samples=2, scst_baseline="greedy",
        scst_max_new_tokens=6, max_new_tokens=6, do_sample=False, output_dir=out, logging_steps=1, max_steps=2,
        per_device_train_batch_size=2, per_device_eval_batch_size=4, learning_rate=1e-3,
    )
    run_cli(config, workdir, "scst")
    logs = [e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "scst/reward_mean" in e]
    assert len(logs) == 2 and all(e["scst/sample_length"] > 0 and e["loss"] == e["loss"] for e in logs)
    assert os.path.isfile(os.path.join(out, "adapter_model.safetensors"))
    before = read_jsonl(os.path.join(out, "predict_captions.jsonl"))
    assert len(before) == 8 and all(r["references"] for r in before)

    reload_out = os.path.join(workdir, "reload")
    run_cli(dict(config, output_dir=reload_out), workdir, "reload",
            overrides=["do_train=false", f"adapter_name_or_path={out}"])
    after = read_jsonl(os.path.join(reload_out, "predict_captions.jsonl"))
    assert [r["caption"] for r in after] == [r["caption"] for r in before]
