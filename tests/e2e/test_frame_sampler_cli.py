"""Stock `sft` and `action_cls` train the same with the host's video path (`video_backend: host`) and with our
frame sampler reading from a frame cache that `llamafactory-video cache-frames` filled: identical losses, and the
training run only reads the cache (no entry added or rewritten)."""

import os
import subprocess

import pytest

from .helpers import BIN, action_cls_config, offline_env, read_jsonl, run_cli


pytestmark = pytest.mark.e2e

VIDEO = {"video_maxlen": 8, "video_fps": 2.0, "video_max_pixels": 12544}


def _entries(cache):
    return {
        os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns
        for d, _, files in os.walk(cache)
        for f in files
        if f.endswith(".npz")
    }


@pytest.fixture(scope="module")
def filled_cache(action_data, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("frame_cache"))
    proc = subprocess.run(
        [
            os.path.join(BIN, "llamafactory-video"), "cache-frames", "--dataset", action_data["train_dataset"],
            "--dataset-dir", action_data["output_dir"], "--template", "qwen2_vl", "--cache-dir", cache,
            "--workers", "2", "--video-maxlen", "8", "--video-fps", "2.0", "--video-max-pixels", "12544",
        ],
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{action_data['num_train']} of {action_data['num_train']} videos cached" in proc.stdout
    return cache


def _config(stage, model, data, out):
    if stage == "action_cls":
        return action_cls_config(
            model, data["output_dir"], out, max_steps=3, logging_steps=1, do_eval=False, do_predict=False,
            plot_loss=False, preprocessing_num_workers=1, eval_dataset=None, **VIDEO,
        )
    return dict(
        stage="sft", model_name_or_path=model, do_train=True, finetuning_type="full", template="qwen2_vl",
        dataset_dir=data["output_dir"], dataset=data["train_dataset"], cutoff_len=512, max_steps=3, logging_steps=1,
        per_device_train_batch_size=2, learning_rate=1e-3, output_dir=out, overwrite_output_dir=True,
        overwrite_cache=True, report_to="none", preprocessing_num_workers=1, seed=7, **VIDEO,
    )


@pytest.mark.parametrize("stage", ["sft", "action_cls"])
def test_sampler_with_cache_gives_the_hosts_losses(stage, tiny_qwen25vl, action_data, filled_cache, tmp_path):
    before = _entries(filled_cache)
    assert len(before) == action_data["num_train"]
    losses = {}
    for name, keys in (("host", {"video_backend": "host"}), ("ours", {"video_frame_cache": filled_cache})):
        out = str(tmp_path / name)
        config = {k: v for k, v in _config(stage, tiny_qwen25vl, action_data, out).items() if v is not None}
        config.update(keys)
        proc = run_cli(config, str(tmp_path), f"{stage}_{name}")
        rows = read_jsonl(os.path.join(out, "trainer_log.jsonl"))
        losses[name] = [row["loss"] for row in rows if "loss" in row]
        if name == "ours":
            assert f"frame cache: {filled_cache}" in proc.stdout + proc.stderr
    assert len(losses["host"]) == 3
    assert losses["ours"] == losses["host"]
    assert _entries(filled_cache) == before  # every video came from the cache: nothing decoded and rewritten
