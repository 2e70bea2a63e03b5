"""Full fine-tuning resumes the whole model (issue 16.1): a run killed with SIGKILL after checkpoint-K and resumed from
it ends with the same weights as the uninterrupted run, for stock `sft` and for `fastslow_ar` (backbone + head); a
checkpoint whose weights do not load stops the run and names the checkpoint.

Before the fix, transformers 5 wrote `model.*` / `visual.*` keys and the resume loaded them into a model whose keys are
`model.language_model.*` / `model.visual.*`: "There were missing keys in the checkpoint model loaded: [every backbone
key]", training went on from the initial backbone."""

import os
import shutil

import pytest
from safetensors.torch import load_file, save_file

from .helpers import assert_same_safetensors, kill_at_checkpoint_and_resume, read_json, run_cli


pytestmark = pytest.mark.e2e

SAVE_STEPS = 2


@pytest.fixture(scope="module")
def captions(tmp_path_factory) -> dict:
    from llamafactory_video.testing.synthetic_videos import make_caption_dataset

    return make_caption_dataset(
        str(tmp_path_factory.mktemp("resume_captions")),
        num_classes=3,
        train_per_class=4,
        test_per_class=1,
        formats=("mp4",),
        size=112,
    )


def _config(model: str, data: dict, out: str, stage: str = "sft", **overrides) -> dict:
    config = {
        "stage": stage,
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
        "max_steps": 8,
        "save_steps": SAVE_STEPS,
        "logging_steps": 1,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "cosine",  # the resumed scheduler must match too
        "output_dir": out,
        "overwrite_output_dir": True,
        "overwrite_cache": True,
        "report_to": "none",
        "preprocessing_num_workers": 1,
        "dataloader_num_workers": 0,
        "seed": 11,
    }
    if stage == "fastslow_ar":
        config.update(fastslow_slow_stride=2, fastslow_fast_stride=4, fastslow_ar_loss_weight=0.15)
    config.update(overrides)
    return config


def _losses(out: str) -> dict[int, float]:
    return {
        row["step"]: row["loss"]
        for row in read_json(os.path.join(out, "trainer_state.json"))["log_history"]
        if "loss" in row
    }


def _assert_resumed_like(reference: str, resumed: str, log: str, files: tuple[str, ...]) -> None:
    assert "missing keys" not in log and "unexpected keys" not in log
    expected, got = _losses(reference), _losses(resumed)
    assert sorted(got) == sorted(expected) == list(range(1, 9))
    for step in range(SAVE_STEPS + 1, 9):  # the steps trained after the resume
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), (step, got, expected)
    assert_same_safetensors(reference, resumed, files, atol=1e-7, rtol=1e-6)


@pytest.fixture(scope="module")
def sft_reference(tiny_qwen25vl, captions, tmp_path_factory) -> str:
    work = str(tmp_path_factory.mktemp("sft_reference"))
    out = os.path.join(work, "out")
    run_cli(_config(tiny_qwen25vl, captions, out), work, "reference")
    return out


def test_sft_full_ft_killed_and_resumed_matches_uninterrupted(tiny_qwen25vl, captions, sft_reference, tmp_path):
    out = str(tmp_path / "out")
    result = kill_at_checkpoint_and_resume(_config(tiny_qwen25vl, captions, out), str(tmp_path), SAVE_STEPS)
    _assert_resumed_like(sft_reference, out, result.stdout + result.stderr, ("model.safetensors",))


def test_fastslow_ar_full_ft_killed_and_resumed_restores_backbone_and_head(tiny_qwen25vl, captions, tmp_path):
    reference, resumed = str(tmp_path / "reference"), str(tmp_path / "resumed")
    run_cli(_config(tiny_qwen25vl, captions, reference, stage="fastslow_ar"), str(tmp_path), "reference")
    config = _config(tiny_qwen25vl, captions, resumed, stage="fastslow_ar")
    result = kill_at_checkpoint_and_resume(config, str(tmp_path), SAVE_STEPS)
    log = result.stdout + result.stderr
    checkpoint = os.path.join(resumed, f"checkpoint-{SAVE_STEPS}")
    assert f"Restored the reconstruction head from {checkpoint}" in log
    _assert_resumed_like(reference, resumed, log, ("model.safetensors", "fastslow_head.safetensors"))


def test_checkpoint_with_missing_weights_stops_the_resume(tiny_qwen25vl, captions, sft_reference, tmp_path):
    checkpoint = str(tmp_path / "checkpoint-2")
    shutil.copytree(os.path.join(sft_reference, f"checkpoint-{SAVE_STEPS}"), checkpoint)
    weights = os.path.join(checkpoint, "model.safetensors")
    state = load_file(weights)
    save_file(
        {k: v for k, v in state.items() if not k.startswith("model.layers.1.")}, weights, metadata={"format": "pt"}
    )

    config = _config(tiny_qwen25vl, captions, str(tmp_path / "out"), resume_from_checkpoint=checkpoint)
    result = run_cli(config, str(tmp_path), "corrupt", expect_ok=False)
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "CheckpointLoadError" in log and f"checkpoint {checkpoint} do not load" in log
    assert "model.language_model.layers.1." in log
    assert not os.path.isdir(os.path.join(tmp_path, "out", "checkpoint-4"))  # stopped before training
