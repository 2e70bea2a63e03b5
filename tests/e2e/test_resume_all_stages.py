"""kill -9 + resume for every plugin stage and fine-tuning type (issue 16): a run SIGKILLed once checkpoint-2 is
complete and resumed from it in place ends with the same weights (adapter or model, AND the stage's head file) and
the same per-step losses as the uninterrupted run of the same config.

Covered here: action_cls full and LoRA, fastslow_ar LoRA, scst full and LoRA, sparc_align full and LoRA. Stock sft
full and fastslow_ar full: test_resume_full_ft.py; FSDP: test_fsdp_cli.py.

Each case is 4 steps, saving every 2, on a few tiny videos: one uninterrupted reference run, one killed run, one
resume."""

import os

import pytest
from safetensors.torch import load_file

from .helpers import (
    action_cls_config,
    assert_same_safetensors,
    kill_at_checkpoint_and_resume,
    read_json,
    run_cli,
    sparc_config,
)


pytestmark = pytest.mark.e2e

MAX_STEPS, SAVE_STEPS = 4, 2

COMMON = {
    "do_train": True,
    "do_eval": False,
    "do_predict": False,
    "max_steps": MAX_STEPS,
    "save_strategy": "steps",
    "save_steps": SAVE_STEPS,
    "logging_steps": 1,
    "per_device_train_batch_size": 2,
    "lr_scheduler_type": "cosine",  # the resumed scheduler must match too
    "overwrite_output_dir": True,
    "overwrite_cache": True,
    "report_to": "none",
    "preprocessing_num_workers": 1,
    "dataloader_num_workers": 0,
    "plot_loss": False,
    "seed": 7,
}
QWEN_VIDEO = {
    "template": "qwen2_vl",
    "cutoff_len": 512,
    "video_maxlen": 8,
    "video_fps": 4.0,
    "video_max_pixels": 112 * 112,
}
LORA = {"lora_rank": 8, "lora_alpha": 16, "lora_target": "all"}


@pytest.fixture(scope="module")
def small_actions(tmp_path_factory) -> dict:
    from llamafactory_video.testing.synthetic_videos import make_action_dataset

    return make_action_dataset(
        str(tmp_path_factory.mktemp("resume_actions")),
        num_classes=4,
        train_per_class=2,
        test_per_class=1,
        formats=("mp4",),
    )


@pytest.fixture(scope="module")
def small_captions(tmp_path_factory) -> dict:
    from llamafactory_video.testing.synthetic_videos import make_caption_dataset

    return make_caption_dataset(
        str(tmp_path_factory.mktemp("resume_captions")),
        num_classes=3,
        train_per_class=2,
        test_per_class=1,
        formats=("mp4",),
        size=112,
    )


@pytest.fixture(scope="module")
def small_alignment(tmp_path_factory) -> dict:
    from llamafactory_video.testing.synthetic_videos import make_alignment_dataset

    return make_alignment_dataset(str(tmp_path_factory.mktemp("resume_align")), train_per_combo=1, num_test=1)


@pytest.fixture(scope="module")
def resume_clip(tmp_path_factory) -> str:
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

    return build_tiny_dual_encoder(str(tmp_path_factory.mktemp("models") / "tiny-clip"), kind="clip")


def _action_cls(request, finetuning_type: str, out: str) -> dict:
    data = request.getfixturevalue("small_actions")
    config = action_cls_config(
        request.getfixturevalue("tiny_qwen25vl"), data["output_dir"], out, dataset=data["train_dataset"]
    )
    config.pop("eval_dataset")
    config.update(COMMON, finetuning_type=finetuning_type, learning_rate=1e-3 if finetuning_type == "lora" else 1e-4)
    return config


def _fastslow_ar(request, finetuning_type: str, out: str) -> dict:
    data = request.getfixturevalue("small_captions")
    return dict(
        COMMON,
        **QWEN_VIDEO,
        **LORA,
        stage="fastslow_ar",
        model_name_or_path=request.getfixturevalue("tiny_qwen25vl"),
        finetuning_type=finetuning_type,
        dataset_dir=data["output_dir"],
        dataset=data["train_sft_dataset"],
        fastslow_slow_stride=2,
        fastslow_fast_stride=4,
        fastslow_ar_loss_weight=0.15,
        learning_rate=1e-3,
        output_dir=out,
    )


def _scst(request, finetuning_type: str, out: str) -> dict:
    data = request.getfixturevalue("small_captions")
    return dict(
        COMMON,
        **QWEN_VIDEO,
        **(LORA if finetuning_type == "lora" else {}),
        stage="scst",
        model_name_or_path=request.getfixturevalue("tiny_qwen25vl"),
        finetuning_type=finetuning_type,
        dataset_dir=data["output_dir"],
        dataset=data["train_dataset"],
        scst_num_samples=2,
        scst_baseline="greedy",
        scst_max_new_tokens=8,
        # a random model's captions score CIDEr 0 against every reference: the length term makes the rewards of the
        # sampled captions differ, so the policy gradient is not zero and the sampled captions matter
        scst_length_penalty=0.2,
        scst_target_length=4,
        do_sample=False,
        max_new_tokens=8,
        learning_rate=1e-3 if finetuning_type == "lora" else 1e-4,
        output_dir=out,
    )


def _sparc_align(request, finetuning_type: str, out: str) -> dict:
    data = request.getfixturevalue("small_alignment")
    config = sparc_config(
        request.getfixturevalue("resume_clip"), data["output_dir"], out, dataset=data["train_dataset"]
    )
    config.pop("eval_dataset")
    config.update(
        COMMON,
        finetuning_type=finetuning_type,
        per_device_train_batch_size=8,
        **({"lora_rank": 4, "lora_alpha": 8, "lora_target": "all"} if finetuning_type == "lora" else {}),
    )
    return config


# (config builder, head file, line the resumed run logs when it restores the head)
STAGES = {
    "action_cls": (_action_cls, "action_decoder.safetensors", "Restored the action head and <ACTION> embedding from"),
    "fastslow_ar": (_fastslow_ar, "fastslow_head.safetensors", "Restored the reconstruction head from"),
    "scst": (_scst, None, None),
    "sparc_align": (_sparc_align, "sparc_align_heads.safetensors", "Resumed the dual encoder weights from"),
}
CASES = [
    ("action_cls", "full"),
    ("action_cls", "lora"),
    ("fastslow_ar", "lora"),  # full (8 steps, per-step losses): test_resume_full_ft.py
    ("scst", "full"),
    ("scst", "lora"),
    ("sparc_align", "full"),
    ("sparc_align", "lora"),
]


def _losses(out: str) -> dict[int, float]:
    history = read_json(os.path.join(out, "trainer_state.json"))["log_history"]
    return {row["step"]: row["loss"] for row in history if "loss" in row}


@pytest.mark.parametrize(("stage", "finetuning_type"), CASES, ids=[f"{s}-{t}" for s, t in CASES])
def test_killed_and_resumed_run_ends_like_the_uninterrupted_one(request, tmp_path, stage, finetuning_type):
    build, head, restored = STAGES[stage]
    reference, resumed = str(tmp_path / "reference"), str(tmp_path / "resumed")
    run_cli(build(request, finetuning_type, reference), str(tmp_path), "reference")
    result = kill_at_checkpoint_and_resume(build(request, finetuning_type, resumed), str(tmp_path), SAVE_STEPS)
    log = result.stdout + result.stderr
    checkpoint = os.path.join(resumed, f"checkpoint-{SAVE_STEPS}")
    assert f"global step {SAVE_STEPS}" in log, log[-3000:]
    if restored:
        assert f"{restored} {checkpoint}" in log, log[-3000:]
    assert "missing keys" not in log and "unexpected keys" not in log

    weights = "adapter_model.safetensors" if finetuning_type == "lora" else "model.safetensors"
    files = (weights,) + ((head,) if head else ())
    assert_same_safetensors(reference, resumed, files)

    expected, got = _losses(reference), _losses(resumed)
    assert sorted(got) == sorted(expected) == list(range(1, MAX_STEPS + 1))
    for step in range(SAVE_STEPS + 1, MAX_STEPS + 1):  # the steps trained after the resume
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), (step, got, expected)

    # not vacuous: the steps after the checkpoint changed the weights
    before, after = load_file(os.path.join(checkpoint, weights)), load_file(os.path.join(resumed, weights))
    assert any(not before[key].equal(after[key]) for key in after), f"{weights} did not change after step {SAVE_STEPS}"
