"""Bad caption data stops `stage: scst` before training with the sample named."""

import json
import os

import pytest

from .helpers import write_sharegpt_dataset


pytestmark = pytest.mark.e2e


def _write(tmp_path, caption_data, mutate, columns=None):
    with open(
        os.path.join(caption_data["output_dir"], f"{caption_data['train_dataset']}.json"), encoding="utf-8"
    ) as f:
        rows = json.load(f)[:4]
    for row in rows:
        row["videos"] = [os.path.join(caption_data["output_dir"], v) for v in row["videos"]]
    mutate(rows)
    columns = columns or {"messages": "messages", "videos": "videos", "references": "references"}
    return write_sharegpt_dataset(str(tmp_path / "data"), "caps", rows, columns)


def _run(model, data_dir, tmp_path):
    from llamafactory.train.tuner import run_exp

    run_exp(
        dict(
            stage="scst",
            model_name_or_path=model,
            do_train=True,
            finetuning_type="full",
            template="qwen2_vl",
            dataset_dir=data_dir,
            dataset="caps",
            cutoff_len=512,
            video_maxlen=8,
            video_fps=2.0,
            video_max_pixels=12544,
            output_dir=str(tmp_path / "out"),
            overwrite_output_dir=True,
            overwrite_cache=True,
            report_to="none",
            max_steps=1,
            per_device_train_batch_size=2,
            preprocessing_num_workers=1,
        )
    )


def test_empty_reference_list(tiny_qwen25vl, caption_data, tmp_path):
    def mutate(rows):
        rows[2]["references"] = []

    with pytest.raises(ValueError, match=r"caps.json` sample 2: empty reference list"):
        _run(tiny_qwen25vl, _write(tmp_path, caption_data, mutate), tmp_path)


def test_reference_column_not_declared(tiny_qwen25vl, caption_data, tmp_path):
    data_dir = _write(tmp_path, caption_data, lambda rows: None, columns={"messages": "messages", "videos": "videos"})
    with pytest.raises(ValueError, match="needs the `references` column"):
        _run(tiny_qwen25vl, data_dir, tmp_path)


def test_undecodable_video(tiny_qwen25vl, caption_data, tmp_path):
    corrupt = tmp_path / "broken.webm"
    corrupt.write_bytes(b"\x1a\x45\xdf\xa3" + os.urandom(512))

    def mutate(rows):
        rows[1]["videos"] = [str(corrupt)]

    # the probe before training (the same for every stage) names the dataset file, the sample and the video
    with pytest.raises(ValueError, match=r"dataset `caps.json` sample 1: video \S*broken.webm: cannot open"):
        _run(tiny_qwen25vl, _write(tmp_path, caption_data, mutate), tmp_path)
