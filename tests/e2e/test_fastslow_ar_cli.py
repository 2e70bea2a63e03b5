"""`stage: fastslow_ar` through the stock `llamafactory-cli`: both losses finite and falling, head + pooling saved,
resume restores the head, the stock sft predict path reloads the model with the same pooling; and the
`video_token_pool_stride` model key on stock sft."""

import json
import os

import numpy as np
import pytest

from .helpers import read_jsonl, run_cli


pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def caption_112(tmp_path_factory) -> dict:
    from llamafactory_video.testing.synthetic_videos import make_caption_dataset

    # 112 px, 8 frames: 4 slots of 4 x 4 merged tokens (64 per video unpooled)
    return make_caption_dataset(
        str(tmp_path_factory.mktemp("caption_112")),
        num_classes=3,
        train_per_class=4,
        test_per_class=1,
        formats=("mp4",),
        size=112,
    )


def _config(model: str, data: dict, out: str, **overrides) -> dict:
    config = {
        "stage": "fastslow_ar",
        "model_name_or_path": model,
        "do_train": True,
        "finetuning_type": "full",
        "template": "qwen2_vl",
        "dataset_dir": data["output_dir"],
        "dataset": data["train_sft_dataset"],
        "cutoff_len": 512,
        "video_maxlen": 8,
        "video_fps": 4.0,
        "video_max_pixels": 112 * 112,
        "fastslow_slow_stride": 2,
        "fastslow_fast_stride": 4,
        "fastslow_ar_loss_weight": 0.15,
        "max_steps": 30,
        "save_steps": 15,
        "logging_steps": 1,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "output_dir": out,
        "overwrite_output_dir": True,
        "overwrite_cache": True,
        "report_to": "none",
        "preprocessing_num_workers": 1,
        "plot_loss": True,
        "seed": 3,
    }
    config.update(overrides)
    return config


def _series(out: str, key: str) -> list[float]:
    return [row[key] for row in read_jsonl(os.path.join(out, "trainer_log.jsonl")) if key in row]


def _history(out: str, key: str) -> list[float]:
    with open(os.path.join(out, "trainer_state.json"), encoding="utf-8") as f:
        return [row[key] for row in json.load(f)["log_history"] if key in row]


def test_fastslow_ar_trains_saves_resumes_and_predicts(tiny_qwen25vl, caption_112, tmp_path):
    out = str(tmp_path / "fastslow")
    result = run_cli(_config(tiny_qwen25vl, caption_112, out), str(tmp_path), "fastslow")
    assert "10 video tokens instead of 64" in result.stdout + result.stderr  # S F S F: 4 + 1 + 4 + 1

    lm = _history(out, "fastslow/lm_loss")
    rec = _history(out, "fastslow/autoregressive_loss")
    assert len(lm) == len(rec) == 30
    assert all(np.isfinite(lm)) and all(np.isfinite(rec))
    assert np.mean(lm[-5:]) < 0.85 * np.mean(lm[:5]), lm
    assert np.mean(rec[-5:]) < 0.8 * np.mean(rec[:5]), rec
    assert set(_history(out, "fastslow/token_ratio")) == {round(10 / 64, 4)}
    for name in ("fastslow_head.safetensors", "fastslow_head_config.json", "video_pooling.json", "model.safetensors"):
        assert os.path.isfile(os.path.join(out, name)), name
        assert os.path.isfile(os.path.join(out, "checkpoint-15", name)), name
    assert os.path.isfile(os.path.join(out, "training_fastslow_autoregressive_loss.png"))
    from safetensors import safe_open

    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        assert not any("fastslow_head" in key for key in f.keys())  # the head lives only in its own file

    # resume from the middle checkpoint: the head comes back with the optimizer state
    resumed = str(tmp_path / "resumed")
    import shutil

    shutil.copytree(out, resumed, ignore=shutil.ignore_patterns("checkpoint-30"))
    result = run_cli(
        _config(
            tiny_qwen25vl,
            caption_112,
            resumed,
            overwrite_output_dir=False,
            resume_from_checkpoint=os.path.join(resumed, "checkpoint-15"),
        ),
        str(tmp_path),
        "resume",
    )
    assert "Restored the reconstruction head" in result.stdout + result.stderr
    assert np.isfinite(_history(resumed, "fastslow/autoregressive_loss")[-1])

    # the stock sft predict path on the trained model: pooling comes from the saved video_pooling.json
    pred = str(tmp_path / "predict")
    run_cli(
        {
            "stage": "sft",
            "model_name_or_path": out,
            "do_predict": True,
            "predict_with_generate": True,
            "finetuning_type": "full",
            "template": "qwen2_vl",
            "dataset_dir": caption_112["output_dir"],
            "eval_dataset": caption_112["test_dataset"],
            "cutoff_len": 512,
            "video_maxlen": 8,
            "video_fps": 4.0,
            "video_max_pixels": 112 * 112,
            "max_new_tokens": 12,
            "per_device_eval_batch_size": 3,
            "output_dir": pred,
            "overwrite_output_dir": True,
            "overwrite_cache": True,
            "report_to": "none",
            "preprocessing_num_workers": 1,
        },
        str(tmp_path),
        "predict",
    )
    rows = read_jsonl(os.path.join(pred, "generated_predictions.jsonl"))
    assert len(rows) == 3
    assert all(row["prompt"].count("<|video_pad|>") == 10 for row in rows)
    assert all(row["predict"].strip() for row in rows)


def test_sft_with_video_token_pool_stride(tiny_qwen25vl, caption_112, tmp_path):
    out = str(tmp_path / "sft_pool")
    config = _config(
        tiny_qwen25vl,
        caption_112,
        out,
        stage="sft",
        video_token_pool_stride=2,
        max_steps=3,
        save_steps=100,
        plot_loss=False,
    )
    for key in [k for k in config if k.startswith("fastslow_")]:
        config.pop(key)
    result = run_cli(config, str(tmp_path), "sft_pool")
    assert "16 video tokens instead of 64 (4.0x fewer)" in result.stdout + result.stderr
    assert len(_series(out, "loss")) == 3 and all(np.isfinite(_series(out, "loss")))


def test_fastslow_ar_refuses_packing_before_loading(tiny_qwen25vl, caption_112, tmp_path):
    out = str(tmp_path / "packing")
    result = run_cli(_config(tiny_qwen25vl, caption_112, out, packing=True), str(tmp_path), "packing", expect_ok=False)
    assert result.returncode != 0
    assert "packing: false" in result.stdout + result.stderr


def test_two_rank_ddp_with_a_rank_that_never_sees_a_video(tiny_qwen25vl, caption_112, tmp_path):
    """Unshuffled, batch 1: rank 0 gets every even row (videos), rank 1 every odd row (text only). Rank 1's
    reconstruction loss is the zero-weighted head touch, so DDP's gradient reduction completes on both ranks."""
    import json

    from .helpers import offline_env, write_sharegpt_dataset

    with open(os.path.join(caption_112["output_dir"], f"{caption_112['train_sft_dataset']}.json")) as f:
        video_rows = json.load(f)[:6]
    rows = []
    for i, row in enumerate(video_rows):
        videos = [os.path.join(caption_112["output_dir"], v) for v in row["videos"]]
        rows.append({"messages": row["messages"], "videos": videos})
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Say the number {i}."},
                    {"role": "assistant", "content": f"The number is {i}."},
                ]
            }
        )
    data_dir = write_sharegpt_dataset(
        str(tmp_path / "mixed"), "mixed", rows, {"messages": "messages", "videos": "videos"}
    )
    out = str(tmp_path / "ddp")
    config = _config(
        tiny_qwen25vl,
        {"output_dir": data_dir, "train_sft_dataset": "mixed"},
        out,
        per_device_train_batch_size=1,
        disable_shuffling=True,
        max_steps=4,
        save_steps=4,
        plot_loss=False,
    )
    proc = run_cli(config, str(tmp_path), "ddp", env=offline_env(FORCE_TORCHRUN="1", NPROC_PER_NODE="2"))
    log = proc.stdout + proc.stderr
    assert "world size: 2" in log and "distributed training: True" in log
    rec = _history(out, "fastslow/autoregressive_loss")
    assert len(rec) == 4 and all(np.isfinite(rec))
    assert os.path.isfile(os.path.join(out, "fastslow_head.safetensors"))
