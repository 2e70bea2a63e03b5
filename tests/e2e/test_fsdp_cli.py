"""Our heads under FSDP (2 CPU ranks, gloo) through the stock ``llamafactory-cli`` with the TrainingArguments keys
``fsdp`` / ``fsdp_config``: trained, gathered whole at save, restored into the shards at resume, equal to DDP.

accelerate 1.11 enables FSDP only on accelerators and silently trains plain DDP on CPU; ``cpu_fsdp/sitecustomize.py``
(test-only, on PYTHONPATH) makes it take the GPU decision so torch's FSDP runs for real. Without it the plugin warns
that FSDP was dropped (checked below)."""

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from .helpers import action_cls_config, offline_env, read_jsonl, run_cli


pytestmark = pytest.mark.e2e

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cpu_fsdp")


def _fsdp_env() -> dict[str, str]:
    env = offline_env(FORCE_TORCHRUN="1", NPROC_PER_NODE="2", LFV_TEST_CPU_FSDP="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SHIM, env.get("PYTHONPATH", "")) if p)
    return env


def _fsdp_keys(version: int, layer: str) -> dict:
    return {
        "fsdp": "full_shard auto_wrap",
        "fsdp_config": {"version": version, "transformer_layer_cls_to_wrap": [layer], "sync_module_states": False},
    }


def _action_config(model: str, data: dict, out: str, **overrides) -> dict:
    config = dict(
        max_steps=4,
        save_steps=2,
        logging_steps=1,
        do_eval=False,
        do_predict=False,
        per_device_train_batch_size=2,
        preprocessing_num_workers=1,
        plot_loss=False,
    )
    config.update(overrides)
    return action_cls_config(model, data["output_dir"], out, **config)


def _assert_close(a: str, b: str, atol: float) -> float:
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys()
    worst = 0.0
    for key in x:
        assert x[key].shape == y[key].shape, key
        worst = max(worst, float((x[key] - y[key]).abs().max()))
    assert worst <= atol, (a, b, worst)
    return worst


def test_action_cls_fsdp2_matches_ddp_saves_full_head_and_resumes(tiny_qwen25vl, action_data, tmp_path):
    ddp, fsdp = str(tmp_path / "ddp"), str(tmp_path / "fsdp")
    run_cli(
        _action_config(tiny_qwen25vl, action_data, ddp),
        str(tmp_path),
        "ddp",
        env=offline_env(FORCE_TORCHRUN="1", NPROC_PER_NODE="2"),
    )
    proc = run_cli(
        _action_config(tiny_qwen25vl, action_data, fsdp, **_fsdp_keys(2, "Qwen2_5_VLDecoderLayer")),
        str(tmp_path),
        "fsdp",
        env=_fsdp_env(),
    )
    log = proc.stdout + proc.stderr
    assert "FSDP: wrapping Qwen2_5_VLDecoderLayer, ActionHead, ActionDecoder, ActionTokenEmbedding" in log
    assert os.path.isfile(os.path.join(fsdp, "checkpoint-2", "pytorch_model_fsdp.bin"))  # the FSDP engine saved
    head = load_file(os.path.join(fsdp, "action_decoder.safetensors"))
    hidden = head["token_embedding.weight"].shape[0]
    assert head["decoder.net.weight"].shape == (4, hidden) and torch.isfinite(head["decoder.net.weight"]).all()
    # same seed, same data, fp32: FSDP2 equals DDP (measured: bitwise on this stack)
    for name in ("action_decoder.safetensors", "adapter_model.safetensors", "checkpoint-2/action_decoder.safetensors"):
        _assert_close(os.path.join(ddp, name), os.path.join(fsdp, name), atol=1e-5)
    losses = [r["loss"] for r in read_jsonl(os.path.join(fsdp, "trainer_log.jsonl")) if "loss" in r]
    ddp_losses = [r["loss"] for r in read_jsonl(os.path.join(ddp, "trainer_log.jsonl")) if "loss" in r]
    assert losses == pytest.approx(ddp_losses, abs=1e-4)

    # resume from step 2 under FSDP: the head file goes back into the shards
    resumed = str(tmp_path / "resumed")
    shutil.copytree(fsdp, resumed, ignore=shutil.ignore_patterns("checkpoint-4"))
    proc = run_cli(
        _action_config(
            tiny_qwen25vl,
            action_data,
            resumed,
            overwrite_output_dir=False,
            resume_from_checkpoint=os.path.join(resumed, "checkpoint-2"),
            **_fsdp_keys(2, "Qwen2_5_VLDecoderLayer"),
        ),
        str(tmp_path),
        "resumed",
        env=_fsdp_env(),
    )
    assert "Restored the action head and <ACTION> embedding from" in proc.stdout + proc.stderr
    # two more steps from the restored head: close to the uninterrupted run (the data order after a resume is the
    # host's; measured max |diff| ~1.5e-3 on weights of max |w| ~0.15)
    _assert_close(
        os.path.join(fsdp, "action_decoder.safetensors"),
        os.path.join(resumed, "action_decoder.safetensors"),
        atol=2e-2,
    )


def test_fastslow_ar_fsdp2_full_finetuning_saves_and_resumes(tiny_qwen25vl, tmp_path):
    from llamafactory_video.testing.synthetic_videos import make_caption_dataset

    data = make_caption_dataset(
        str(tmp_path / "data"), num_classes=2, train_per_class=4, test_per_class=1, formats=("mp4",), size=112
    )
    config = {
        "stage": "fastslow_ar",
        "model_name_or_path": tiny_qwen25vl,
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
        "max_steps": 2,
        "save_steps": 1,
        "logging_steps": 1,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
        "overwrite_output_dir": True,
        "overwrite_cache": True,
        "report_to": "none",
        "preprocessing_num_workers": 1,
        "plot_loss": False,
        "seed": 3,
        **_fsdp_keys(2, "Qwen2_5_VLDecoderLayer"),
    }
    out = str(tmp_path / "fsdp1")
    proc = run_cli(dict(config, output_dir=out), str(tmp_path), "fsdp1", env=_fsdp_env())
    assert "ReconstructionHead" in proc.stdout + proc.stderr  # wrapped as a unit of its own
    assert os.path.isfile(os.path.join(out, "checkpoint-1", "pytorch_model_fsdp.bin"))
    head = load_file(os.path.join(out, "fastslow_head.safetensors"))
    saved = load_file(os.path.join(out, "checkpoint-1", "fastslow_head.safetensors"))
    assert head.keys() == saved.keys() and all(torch.isfinite(v).all() for v in head.values())
    assert any(not torch.equal(head[k], saved[k]) for k in head)  # step 2 moved the full (gathered) head
    with open(os.path.join(out, "model.safetensors"), "rb") as f:
        assert b"fastslow_head" not in f.read(1 << 16)  # the head lives only in its own file

    resumed = str(tmp_path / "resumed")
    shutil.copytree(out, resumed, ignore=shutil.ignore_patterns("checkpoint-2"))
    proc = run_cli(
        dict(
            config,
            output_dir=resumed,
            overwrite_output_dir=False,
            resume_from_checkpoint=os.path.join(resumed, "checkpoint-1"),
        ),
        str(tmp_path),
        "fsdp1_resumed",
        env=_fsdp_env(),
    )
    assert "Restored the reconstruction head" in proc.stdout + proc.stderr
    after = load_file(os.path.join(resumed, "fastslow_head.safetensors"))
    assert after.keys() == head.keys() and all(torch.isfinite(v).all() for v in after.values())


def test_fsdp_requested_on_cpu_without_the_shim_warns_it_runs_ddp(tiny_qwen25vl, action_data, tmp_path):
    out = str(tmp_path / "dropped")
    config = _action_config(
        tiny_qwen25vl, action_data, out, max_steps=1, save_steps=100, **_fsdp_keys(1, "Qwen2_5_VLDecoderLayer")
    )
    proc = run_cli(config, str(tmp_path), "dropped", env=offline_env(FORCE_TORCHRUN="1", NPROC_PER_NODE="2"))
    assert "accelerate did not enable FSDP" in proc.stdout + proc.stderr
