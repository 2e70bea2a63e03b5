"""The UCF101 converter's output trains with ``stage: action_cls`` as is (class names become ``id2label``).

Real encoded clips laid out as the official ``UCF-101/<Class>/v_<Class>_gNN_cNN.avi`` tree with CRLF split
files, converted by ``scripts/prepare_ucf101.py``'s library function, checked by ``check-data``, then trained
for one step through the host's ``run_exp`` in-process (the code path of ``llamafactory-cli train``).
"""

import json
import os

import numpy as np
import pytest

from llamafactory_video.testing.synthetic_videos import action_classes, render_clip, write_video
from llamafactory_video.tools.convert import convert_ucf101

from .helpers import read_json


pytestmark = pytest.mark.e2e

CLASSES = ["ApplyEyeMakeup", "BasketballDunk", "YoYo"]


def _ucf101_tree(root):
    rng = np.random.default_rng(0)
    shapes = action_classes(len(CLASSES))
    train, test = [], []
    for label, name in enumerate(CLASSES):
        for group in (1, 2, 3):
            rel = f"{name}/v_{name}_g{group:02d}_c01.avi"
            write_video(render_clip(shapes[label], rng, size=32, num_frames=4), os.path.join(root, "UCF-101", rel))
            (test if group == 3 else train).append(rel)
    split_dir = os.path.join(root, "ucfTrainTestlist")
    os.makedirs(split_dir)
    for file_name, lines in (
        ("classInd.txt", [f"{i + 1} {n}" for i, n in enumerate(CLASSES)]),
        ("trainlist01.txt", [f"{rel} {CLASSES.index(rel.split('/')[0]) + 1}" for rel in train]),
        ("testlist01.txt", test),
    ):
        with open(os.path.join(split_dir, file_name), "wb") as f:
            f.write("".join(line + "\r\n" for line in lines).encode())
    return split_dir, os.path.join(root, "UCF-101")


def test_ucf101_conversion_trains_action_cls(tiny_qwen25vl, tmp_path):
    from llamafactory.train.tuner import run_exp

    from llamafactory_video.cli import main

    data_dir = tmp_path / "data"
    split_dir, video_root = _ucf101_tree(str(data_dir))  # videos under the dataset dir: relative paths
    summary = convert_ucf101(split_dir, video_root, str(data_dir), split=1)
    assert summary.outputs == {"ucf101_train.json": 6, "ucf101_test.json": 3} and not summary.missing_videos
    assert not os.path.isabs(read_json(str(data_dir / "ucf101_train.json"))[0]["videos"][0])

    assert (
        main(
            [
                "check-data",
                "--dataset",
                "ucf101_train",
                "--dataset-dir",
                str(data_dir),
                "--workers",
                "1",
                "--no-progress",
                "--model",
                tiny_qwen25vl,
                "--template",
                "qwen2_vl",
                "--cutoff-len",
                "512",
                "--video-maxlen",
                "8",
                "--video-fps",
                "2",
                "--video-max-pixels",
                "12544",
            ]
        )
        == 0
    )

    output_dir = tmp_path / "out"
    run_exp(
        dict(
            stage="action_cls",
            model_name_or_path=tiny_qwen25vl,
            do_train=True,
            max_steps=1,
            finetuning_type="lora",
            lora_rank=4,
            template="qwen2_vl",
            dataset_dir=str(data_dir),
            dataset="ucf101_train",
            cutoff_len=512,
            video_maxlen=8,
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
    with open(output_dir / "action_decoder_config.json", encoding="utf-8") as f:
        config = json.load(f)
    assert config["id2label"] == {str(i): name for i, name in enumerate(CLASSES)}
    assert config["num_classes"] == len(CLASSES)
