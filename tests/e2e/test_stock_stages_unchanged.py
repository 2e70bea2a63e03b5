"""A stock `sft` run gives the same losses with and without the plugin."""

import os

import pytest

from .helpers import offline_env, read_jsonl, run_cli


pytestmark = pytest.mark.e2e


def test_sft_losses_identical_with_and_without_plugin(tiny_qwen25vl, action_data, tmp_path):
    losses = {}
    for name, env in (("with_plugin", offline_env()), ("without_plugin", offline_env(LLAMAFACTORY_VIDEO_DISABLE="1"))):
        out = str(tmp_path / name)
        config = dict(
            stage="sft",
            model_name_or_path=tiny_qwen25vl,
            do_train=True,
            finetuning_type="full",
            template="qwen2_vl",
            dataset_dir=action_data["output_dir"],
            dataset=action_data["train_dataset"],
            cutoff_len=512,
            video_maxlen=8,
            video_fps=2.0,
            video_max_pixels=12544,
            max_steps=4,
            logging_steps=1,
            per_device_train_batch_size=2,
            learning_rate=1e-3,
            output_dir=out,
            overwrite_output_dir=True,
            overwrite_cache=True,
            report_to="none",
            preprocessing_num_workers=1,
            seed=7,
        )
        run_cli(config, str(tmp_path), name, env=env)
        losses[name] = [row["loss"] for row in read_jsonl(os.path.join(out, "trainer_log.jsonl")) if "loss" in row]
    assert len(losses["with_plugin"]) == 4
    assert losses["with_plugin"] == losses["without_plugin"]
