"""Issue 16, item 4: a stage owns what it writes. fastslow_ar into a directory, then action_cls into the same one
with `overwrite_output_dir: true` (as every demo YAML sets): fastslow_ar's `video_pooling.json` and head are removed
(each logged), so a later predict of that adapter does not pool its videos; without `overwrite_output_dir`, the
host's auto-resume of fastslow_ar's checkpoint is refused naming the checkpoint and its stage."""

import json
import os
import shutil

import pytest

from .helpers import action_cls_config, run_cli


pytestmark = pytest.mark.e2e


def _fastslow(model: str, data: dict, out: str) -> dict:
    return {
        "stage": "fastslow_ar",
        "model_name_or_path": model,
        "do_train": True,
        "finetuning_type": "lora",
        "lora_target": "all",
        "template": "qwen2_vl",
        "dataset_dir": data["output_dir"],
        "dataset": data["train_sft_dataset"],
        "cutoff_len": 512,
        "video_maxlen": 8,
        "video_fps": 2.0,
        "video_max_pixels": 12544,
        "fastslow_slow_stride": 2,
        "fastslow_fast_stride": 4,
        "max_steps": 2,
        "save_steps": 2,
        "per_device_train_batch_size": 2,
        "output_dir": out,
        "overwrite_output_dir": True,
        "overwrite_cache": True,
        "report_to": "none",
        "preprocessing_num_workers": 1,
        "plot_loss": False,
    }


def _action_cls(model: str, data: dict, out: str, **overrides) -> dict:
    config = action_cls_config(
        model,
        data["output_dir"],
        out,
        max_steps=2,
        save_steps=2,
        per_device_train_batch_size=2,
        do_eval=False,
        do_predict=False,
        plot_loss=False,
        preprocessing_num_workers=1,
    )
    config.pop("num_train_epochs", None)
    config.update(overrides)
    return config


def test_action_cls_over_a_fastslow_dir_owns_it_and_predict_does_not_pool(
    tiny_qwen25vl, caption_data, action_data, tmp_path
):
    out = str(tmp_path / "d")
    log = run_cli(_fastslow(tiny_qwen25vl, caption_data, out), str(tmp_path), "fastslow")
    assert "video token pooling" in log.stdout + log.stderr
    for name in ("video_pooling.json", "fastslow_head.safetensors", "llamafactory_video_artifacts.json"):
        assert os.path.isfile(os.path.join(out, name)), name
        assert os.path.isfile(os.path.join(out, "checkpoint-2", name)), name
    with open(os.path.join(out, "video_pooling.json"), encoding="utf-8") as f:
        written_by = json.load(f)["written_by"]
    assert written_by["stage"] == "fastslow_ar" and written_by["weights"]["file"] == "adapter_model.safetensors"
    refused_dir = str(tmp_path / "d_again")
    shutil.copytree(out, refused_dir)

    # the demo recipe's overwrite_output_dir: true -> fastslow_ar's files are removed, each logged
    result = run_cli(_action_cls(tiny_qwen25vl, action_data, out), str(tmp_path), "action_cls")
    text = result.stdout + result.stderr
    for name in ("video_pooling.json", "fastslow_head.safetensors", "fastslow_head_config.json"):
        assert not os.path.exists(os.path.join(out, name)), name
        assert f"removed {os.path.join(out, name)} (written by stage fastslow_ar" in text, name
    with open(os.path.join(out, "llamafactory_video_artifacts.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    assert manifest["stage"] == "action_cls"
    assert set(manifest["files"]) == {"action_decoder.safetensors", "action_decoder_config.json"}

    # predict with adapter_name_or_path = that directory: no pooling (stock placeholder count)
    pred = str(tmp_path / "pred")
    config = _action_cls(
        tiny_qwen25vl,
        action_data,
        pred,
        do_train=False,
        do_predict=True,
        adapter_name_or_path=out,
        per_device_eval_batch_size=8,
    )
    for key in ("lora_target", "lora_rank", "lora_alpha"):
        config.pop(key, None)
    result = run_cli(config, str(tmp_path), "predict")
    text = result.stdout + result.stderr
    assert "video token pooling" not in text
    assert os.path.isfile(os.path.join(pred, "action_predictions.jsonl"))

    # without overwrite_output_dir the host auto-resumes fastslow_ar's checkpoint-2: refused, naming both
    result = run_cli(
        _action_cls(tiny_qwen25vl, action_data, refused_dir, overwrite_output_dir=False),
        str(tmp_path),
        "refused",
        expect_ok=False,
    )
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert os.path.join(refused_dir, "checkpoint-2") in text and "written by `stage: fastslow_ar`" in text
    assert os.path.isfile(os.path.join(refused_dir, "video_pooling.json"))  # nothing touched
