"""Tests of the offline test-asset generators (tiny Qwen-VL checkpoints, synthetic action videos)."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import av
import numpy as np
import pytest
import torch

from llamafactory_video.testing.synthetic_videos import (
    ACTION_PROMPT,
    action_classes,
    make_action_dataset,
    render_clip,
    write_video,
)
from llamafactory_video.testing.tiny_model import QWEN2_VL_SPECIAL_TOKENS, build_tiny_model

NUM_CLASSES = 4
TRAIN_PER_CLASS = 3
TEST_PER_CLASS = 2
FORMATS = ("mp4", "avi", "webm")
SIZE = 64
NUM_FRAMES = 8


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen2_vl"])
def tiny(request, tmp_path_factory):
    from transformers import AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    path = build_tiny_model(tmp_path_factory.mktemp(request.param), arch=request.param)
    return {
        "arch": request.param,
        "path": path,
        "tokenizer": AutoTokenizer.from_pretrained(path),
        "processor": AutoProcessor.from_pretrained(path),
        "model": AutoModelForImageTextToText.from_pretrained(path).eval(),
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    (out / "dataset_info.json").write_text(json.dumps({"existing": {"file_name": "x.json"}}))
    info = make_action_dataset(
        out,
        num_classes=NUM_CLASSES,
        train_per_class=TRAIN_PER_CLASS,
        test_per_class=TEST_PER_CLASS,
        formats=FORMATS,
        size=SIZE,
        num_frames=NUM_FRAMES,
        fps=4,
        seed=0,
    )
    return out, info


def _decode(path):
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _video_inputs(tiny, frames):
    processor = tiny["processor"]
    messages = [
        {
            "role": "user",
            "content": [{"type": "video"}, {"type": "text", "text": "What action is being performed in this video?"}],
        }
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n")
    assert "<|vision_start|><|video_pad|><|vision_end|>What action" in text
    assert text.endswith("<|im_start|>assistant\n")
    return processor(text=[text], videos=[frames], return_tensors="pt")


def test_tokenizer_special_tokens_and_config_ids(tiny):
    tokenizer, config = tiny["tokenizer"], tiny["model"].config
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"
    ids = []
    for token in QWEN2_VL_SPECIAL_TOKENS:
        encoded = tokenizer(token, add_special_tokens=False)["input_ids"]
        assert len(encoded) == 1, token
        assert tokenizer.decode(encoded) == token
        ids.append(encoded[0])
    first = ids[0]
    assert ids == list(range(first, first + len(ids)))  # original Qwen2-VL order, after the BPE vocab
    assert len(tokenizer) == first + len(ids)
    assert 1000 <= first <= 4096

    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.chat_template and "<|video_pad|>" in tokenizer.chat_template
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config.vision_start_token_id == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert config.vision_end_token_id == tokenizer.convert_tokens_to_ids("<|vision_end|>")
    assert config.text_config.eos_token_id == tokenizer.eos_token_id
    assert config.text_config.pad_token_id == tokenizer.pad_token_id

    vocab_size = config.text_config.vocab_size
    assert vocab_size % 64 == 0 and vocab_size - len(tokenizer) >= 64
    assert not config.tie_word_embeddings
    assert sum(config.text_config.rope_parameters["mrope_section"]) * 2 == 48 // 4

    text = "The red square moves right. The purple ring moves up and left."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) <= 14
    assert tokenizer.decode(ids) == text


def test_processor_video_tokens_forward_and_generate(tiny, dataset):
    out, info = dataset
    model, tokenizer = tiny["model"], tiny["tokenizer"]
    assert type(tiny["processor"]).__name__ == (
        "Qwen2_5_VLProcessor" if tiny["arch"] == "qwen2_5_vl" else "Qwen2VLProcessor"
    )
    assert type(tiny["processor"].video_processor).__name__ == "Qwen2VLVideoProcessor"

    with open(info["train_file"]) as f:
        frames = _decode(out / json.load(f)[0]["videos"][0])
    inputs = _video_inputs(tiny, frames)
    assert inputs["pixel_values_videos"].ndim == 2 and inputs["pixel_values_videos"].shape[1] == 3 * 2 * 14 * 14
    # 8 frames of 64x64 -> resized to 56x56 -> grid (8/2, 56/14, 56/14)
    assert inputs["video_grid_thw"].tolist() == [[NUM_FRAMES // 2, 4, 4]]
    num_video_tokens = int((inputs["input_ids"] == model.config.video_token_id).sum())
    assert num_video_tokens == int(inputs["video_grid_thw"].prod()) // 4 == 16

    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()

    generated = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 3
    assert isinstance(tokenizer.decode(generated[0, inputs["input_ids"].shape[1] :]), str)


def test_checkpoint_files(tiny):
    files = set(os.listdir(tiny["path"]))
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= files
    assert {"tokenizer_config.json", "processor_config.json", "chat_template.jinja"} <= files
    with open(os.path.join(tiny["path"], "processor_config.json")) as f:
        processor_config = json.load(f)
    for key in ("image_processor", "video_processor"):
        assert processor_config[key]["size"] == {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}
        assert processor_config[key]["patch_size"] == 14 and processor_config[key]["merge_size"] == 2
    assert all(p.dtype == torch.float32 for p in tiny["model"].parameters())


def test_llamafactory_loader(tiny, dataset, tmp_path):
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import get_infer_args
    from llamafactory.model import load_model, load_tokenizer

    out, info = dataset
    model_args, data_args, finetuning_args, _ = get_infer_args(
        {
            "model_name_or_path": tiny["path"],
            "template": "qwen2_vl",
            "trust_remote_code": True,
            "video_maxlen": 8,
            "video_fps": 2.0,
            "video_max_pixels": 12544,
        }
    )
    module = load_tokenizer(model_args)
    tokenizer, processor = module["tokenizer"], module["processor"]
    assert processor is not None
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    model = load_model(tokenizer, model_args, finetuning_args, is_trainable=False)
    assert model.config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")

    with open(info["train_file"]) as f:
        video = str(out / json.load(f)[0]["videos"][0])  # mp4: 2 s at 4 fps -> 4 frames at video_fps 2
    messages = template.mm_plugin.process_messages(
        [{"role": "user", "content": "<video>hi"}], [], [video], [], processor
    )
    assert messages[0]["content"].count("<|video_pad|>") == 8
    mm_inputs = template.mm_plugin.get_mm_inputs([], [video], [], [0], [1], [0], [[0]], processor)
    assert mm_inputs["video_grid_thw"].tolist() == [[2, 4, 4]]


def test_synthetic_videos_decode(dataset):
    out, info = dataset
    assert set(info["encoders"]) == set(FORMATS)
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        with open(info[f"{split}_file"]) as f:
            records = json.load(f)
        assert len(records) == per_class * NUM_CLASSES == info[f"num_{split}"]
        for i, record in enumerate(records):
            path = out / record["videos"][0]
            assert path.suffix == "." + FORMATS[i % len(FORMATS)]
            frames = _decode(path)
            assert frames.shape == (NUM_FRAMES, SIZE, SIZE, 3)
            # the class colour is present in the frame
            rgb = np.asarray(action_classes(NUM_CLASSES)[record["action_label"]].rgb, dtype=float)
            assert (np.abs(frames[0].astype(float) - rgb).sum(-1) < 90).sum() >= 20


def test_dataset_json_and_dataset_info(dataset):
    out, info = dataset
    names = [
        "red_square_moves_right",
        "green_circle_moves_left",
        "blue_triangle_moves_up",
        "yellow_diamond_moves_down",
    ]
    assert info["class_names"] == names
    with open(out / "synth_action_labels.json") as f:
        assert json.load(f) == names
    with open(out / "synth_action_train.json") as f:
        records = json.load(f)
    assert records[0] == {
        "messages": [
            {"role": "user", "content": "<video>What action is being performed in this video?<ACTION>"},
            {"role": "assistant", "content": "The red square moves right."},
        ],
        "videos": ["videos/synth_action_train_0000.mp4"],
        "action_label": 0,
    }
    assert records[0]["messages"][0]["content"] == ACTION_PROMPT
    assert sorted({r["action_label"] for r in records}) == list(range(NUM_CLASSES))

    with open(out / "dataset_info.json") as f:
        dataset_info = json.load(f)
    assert "existing" in dataset_info  # merged, not overwritten
    for split in ("train", "test"):
        assert dataset_info[f"synth_action_{split}"] == {
            "file_name": f"synth_action_{split}.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "videos": "videos", "action_label": "action_label"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
            "label_names": "synth_action_labels.json",
        }


def test_clips_are_random_and_reproducible(tmp_path):
    action = action_classes(8)[7]
    first = render_clip(action, np.random.default_rng(0))
    again = render_clip(action, np.random.default_rng(0))
    other = render_clip(action, np.random.default_rng(1))
    assert first.shape == (8, 64, 64, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert write_video(first, tmp_path / "clip.webm", fps=4) in ("libvpx-vp9", "libvpx")
    assert _decode(tmp_path / "clip.webm").shape == first.shape


def test_clip_object_radius_and_travel():
    action = action_classes(1)[0]  # red: the object's pixels are the ones far redder than the grey background
    small = render_clip(action, np.random.default_rng(0))
    default = render_clip(action, np.random.default_rng(0), radius=(0.13, 0.18), travel=0.4)
    assert np.array_equal(small, default)  # the defaults are the old fixed values (same clips, same rng use)
    big = render_clip(action, np.random.default_rng(0), radius=(0.3, 0.35), travel=0.2)

    def object_share(clip):
        return float(((clip[..., 0].astype(int) - clip[..., 2].astype(int)) > 100).mean())

    assert object_share(big) > 3 * object_share(small)
    with pytest.raises(ValueError, match="radius"):
        render_clip(action, np.random.default_rng(0), radius=(0.4, 0.45), travel=0.4)
