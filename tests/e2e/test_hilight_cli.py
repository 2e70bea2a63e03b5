"""HiLight through the stock CLI (docs/models/hilight.md): ``llamafactory-video hilight-build`` on tiny towers and a
tiny Qwen2 LM -> stage 1 (stock ``sft``, towers + LLM frozen: only TokenMining changes) -> stage 2 LoRA with
TokenMining frozen and with it trained (``additional_target: token_mining``, the one switching key) -> chat on a
held-out video with the adapter -> ``llamafactory-cli export`` merges it and the merged model answers the same."""

import os
import subprocess

import pytest
import yaml
from safetensors.torch import load_file

from .helpers import CLI, HILIGHT_NUM_FRAMES as NUM_FRAMES, offline_env, run_cli

VIDEO_KEYS = dict(video_fps=4.0, video_maxlen=NUM_FRAMES)


def changed(before: dict, after: dict, prefix: str = "") -> set[str]:
    return {k for k in before if k.startswith(prefix) and not (before[k] == after[k]).all()}


@pytest.fixture(scope="module")
def hilight(tiny_hilight, tmp_path_factory) -> dict:
    from llamafactory_video.testing.synthetic_videos import make_caption_dataset

    root = tmp_path_factory.mktemp("hilight")
    data = make_caption_dataset(
        str(root / "data"), num_classes=2, train_per_class=2, test_per_class=1, size=32, num_frames=8, formats=["mp4"]
    )
    return {"root": str(root), "model": tiny_hilight, "data": data}


def sft_config(hilight: dict, model: str, output_dir: str, **keys) -> dict:
    config = dict(
        model_name_or_path=model,
        template="hilight_qwen",
        stage="sft",
        do_train=True,
        dataset=hilight["data"]["train_sft_dataset"],
        dataset_dir=hilight["data"]["output_dir"],
        max_samples=4,
        cutoff_len=64,
        overwrite_cache=True,
        preprocessing_num_workers=1,
        output_dir=output_dir,
        overwrite_output_dir=True,
        per_device_train_batch_size=2,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_gradient_checkpointing=True,
        **VIDEO_KEYS,
    )
    config.update(keys)
    return config


@pytest.fixture(scope="module")
def stage1(hilight) -> str:
    out = os.path.join(hilight["root"], "stage1")
    keys = dict(finetuning_type="full", freeze_vision_tower=True, freeze_language_model=True)
    run_cli(
        sft_config(hilight, hilight["model"], out, freeze_multi_modal_projector=False, **keys), hilight["root"], "s1"
    )
    return out


@pytest.fixture(scope="module")
def stage2(hilight, stage1) -> dict:
    runs = {}
    lora = dict(finetuning_type="lora", lora_target="all", lora_rank=4, learning_rate=5e-3)
    for name, keys in (("frozen", {}), ("trained", {"additional_target": "token_mining"})):
        out = os.path.join(hilight["root"], f"stage2_{name}")
        run_cli(sft_config(hilight, stage1, out, **lora, **keys), hilight["root"], f"s2_{name}")
        runs[name] = out
    return runs


def test_stage1_trains_only_token_mining(hilight, stage1):
    before = load_file(os.path.join(hilight["model"], "model.safetensors"))
    after = load_file(os.path.join(stage1, "model.safetensors"))
    assert before.keys() == after.keys()
    moved = changed(before, after)
    assert moved and all(k.startswith("token_mining.") for k in moved), sorted(moved)[:5]
    assert {k.split(".")[0] for k in before} == {"video_tower", "frame_tower", "token_mining", "language_model"}


def test_stage2_one_key_switches_token_mining(stage1, stage2):
    base = load_file(os.path.join(stage1, "model.safetensors"))
    frozen = load_file(os.path.join(stage2["frozen"], "adapter_model.safetensors"))
    trained = load_file(os.path.join(stage2["trained"], "adapter_model.safetensors"))
    prefix = "base_model.model."
    for adapter in (frozen, trained):
        lora = [k for k in adapter if ".lora_" in k]
        assert lora and all(k.startswith(prefix + "language_model.") for k in lora)
        assert any(adapter[k].abs().sum() > 0 for k in lora if ".lora_B." in k)  # B starts at zero: it learned
        assert not any("tower" in k for k in adapter)
    assert not any("token_mining" in k for k in frozen)  # 7.1: TokenMining stays the stage-1 one
    saved = {
        k[len(prefix) :].replace(".modules_to_save.default", ""): v for k, v in trained.items() if "token_mining" in k
    }
    assert saved.keys() == {k for k in base if k.startswith("token_mining.")}  # 7.2: saved whole...
    assert any(not (saved[k] == base[k]).all() for k in saved)  # ...and trained


def test_chat_then_export_merged_answers_the_same(hilight, stage1, stage2):
    from llamafactory.chat import ChatModel

    merged = os.path.join(hilight["root"], "merged")
    export = dict(
        model_name_or_path=stage1,
        adapter_name_or_path=stage2["trained"],
        finetuning_type="lora",
        template="hilight_qwen",
        export_dir=merged,
    )
    path = os.path.join(hilight["root"], "export.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(export, f)
    proc = subprocess.run([CLI, "export", path], env=offline_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]

    base, out = (
        load_file(os.path.join(stage1, "model.safetensors")),
        load_file(os.path.join(merged, "model.safetensors")),
    )
    assert base.keys() == out.keys()
    assert not changed(base, out, "video_tower.") and not changed(base, out, "frame_tower.")
    assert changed(base, out, "token_mining.") and changed(base, out, "language_model.")

    video = os.path.join(hilight["data"]["output_dir"], "videos", "synth_caption_test_0000.mp4")
    messages = [{"role": "user", "content": "<video>Describe this video in one sentence."}]
    chat_keys = dict(template="hilight_qwen", max_new_tokens=8, do_sample=False, **VIDEO_KEYS)
    answers = []
    for model_keys in (
        dict(model_name_or_path=stage1, adapter_name_or_path=stage2["trained"], finetuning_type="lora"),
        dict(model_name_or_path=merged),
    ):
        response = ChatModel({**model_keys, **chat_keys}).chat(messages, videos=[video])[0]
        assert response.response_length > 0 and response.prompt_length > NUM_FRAMES
        answers.append(response.response_text)
    assert answers[0] == answers[1]
