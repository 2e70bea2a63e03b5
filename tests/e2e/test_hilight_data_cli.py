"""The HiLight data (seed 002) goes through the host as is: `make-billiards` videos and a Valley `chat.json` converted
by `scripts/prepare_valley.py`'s library function pass `check-data` (every video decoded and tokenized with a real
processor), then the stock `sft` stage trains on both mixed for two steps (the recipes' path) and saves its adapter.
"""

import json
import os

import pytest

from llamafactory_video.tools.convert import convert_valley


pytestmark = pytest.mark.e2e

VIDEO_ARGS = ["--video-maxlen", "4", "--video-fps", "2", "--video-max-pixels", "12544"]


def test_billiards_and_valley_data_check_and_train_with_stock_sft(tiny_qwen25vl, tmp_path):
    from llamafactory.train.tuner import run_exp

    from llamafactory_video.cli import main

    data_dir = tmp_path / "data"
    assert main(["make-billiards", "--output", str(data_dir), "--train", "3", "--test", "1", "--no-progress"]) == 0
    clips = json.loads((data_dir / "billiards_qa_train_clips.json").read_text())
    # a Valley pretraining file whose videos are the billiards clips, laid out as webvid/<page folder>/<id>.mp4
    chat = [
        {
            "id": str(k),
            "video": f"000001_000050/{k}.mp4",
            "conversations": [
                {"from": "human", "value": "Describe the following video concisely.\n<video>"},
                {"from": "gpt", "value": clip["caption"]},
            ],
        }
        for k, clip in enumerate(clips)
    ]
    for k, clip in enumerate(clips):
        target = data_dir / "webvid" / "000001_000050" / f"{k}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((data_dir / clip["video"]).read_bytes())
    (tmp_path / "chat.json").write_text(json.dumps(chat, indent=2))
    summary = convert_valley(str(tmp_path / "chat.json"), str(data_dir), str(data_dir))
    assert summary.outputs == {"valley.json": 3} and not summary.missing_videos

    for dataset in ("valley", "billiards_qa_train"):
        code = main(
            ["check-data", "--dataset", dataset, "--dataset-dir", str(data_dir), "--workers", "1", "--no-progress"]
            + ["--model", tiny_qwen25vl, "--template", "qwen2_vl", "--cutoff-len", "512", *VIDEO_ARGS]
        )
        assert code == 0, dataset

    output_dir = tmp_path / "out"
    run_exp(
        dict(
            stage="sft",
            model_name_or_path=tiny_qwen25vl,
            do_train=True,
            max_steps=2,
            finetuning_type="lora",
            lora_rank=4,
            template="qwen2_vl",
            dataset_dir=str(data_dir),
            dataset="valley,billiards_qa_train",
            cutoff_len=512,
            video_maxlen=4,
            video_fps=2.0,
            video_max_pixels=12544,
            output_dir=str(output_dir),
            overwrite_output_dir=True,
            overwrite_cache=True,
            report_to="none",
            per_device_train_batch_size=2,
            preprocessing_num_workers=1,
        )
    )
    assert os.path.isfile(output_dir / "adapter_model.safetensors")
    with open(output_dir / "trainer_state.json", encoding="utf-8") as f:
        state = json.load(f)
    assert state["global_step"] == 2
