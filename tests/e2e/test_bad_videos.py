"""Partly decodable videos stop every stage BEFORE training, naming the dataset file, the sample and the video.

One failure mode per stage (each is caught by the same probe, data/video_probe.py, run on the converted data):
a faststart mp4 cut to 30 % (opens, declares all its frames, fails to decode part way), a 0-byte file, an avi cut
short (decodes quietly to fewer frames) and a webm cut short (declares no frame count). Like
test_action_cls_bad_input.py these run the host's own `run_exp` in-process: the check fires before any model loads.
"""

import json
import os

import pytest

from llamafactory_video.testing.broken_videos import write_broken_set

from .helpers import write_sharegpt_dataset


pytestmark = pytest.mark.e2e

COMMON = dict(
    do_train=True,
    template="qwen2_vl",
    cutoff_len=512,
    video_maxlen=64,
    video_fps=8.0,
    video_max_pixels=12544,
    overwrite_output_dir=True,
    overwrite_cache=True,
    report_to="none",
    max_steps=1,
    per_device_train_batch_size=2,
    preprocessing_num_workers=1,
)


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    return write_broken_set(str(tmp_path_factory.mktemp("broken_videos")))


@pytest.fixture(autouse=True)
def _probe_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMAFACTORY_VIDEO_CACHE", str(tmp_path / "probe_cache"))


def _samples(data_file, output_dir, n=4):
    with open(data_file, encoding="utf-8") as f:
        samples = json.load(f)[:n]
    for sample in samples:
        sample["videos"] = [os.path.join(output_dir, v) for v in sample["videos"]]
    return samples


def _run(tmp_path, **args):
    from llamafactory.train.tuner import run_exp

    run_exp(dict(COMMON, output_dir=str(tmp_path / "out"), **args))


def _assert_named(message, file_name, index, path):
    assert f"dataset `{file_name}` sample {index}: video {path}" in message, message
    assert "before training" in message


def test_action_cls_cut_faststart_mp4(tiny_qwen25vl, action_data, broken, tmp_path):
    samples = _samples(action_data["train_file"], action_data["output_dir"])
    samples[2]["videos"] = [broken["cut_faststart"]]
    columns = {"messages": "messages", "videos": "videos", "action_label": "action_label"}
    data_dir = write_sharegpt_dataset(str(tmp_path / "data"), "bad", samples, columns)
    with pytest.raises(ValueError) as err:
        _run(
            tmp_path,
            stage="action_cls",
            model_name_or_path=tiny_qwen25vl,
            finetuning_type="lora",
            dataset_dir=data_dir,
            dataset="bad",
            num_action_classes=4,
        )
    _assert_named(str(err.value), "bad.json", 2, broken["cut_faststart"])
    assert "decoding fails after" in str(err.value) and "InvalidDataError" in str(err.value)


def test_fastslow_ar_cut_avi(tiny_qwen25vl, action_data, broken, tmp_path):
    samples = _samples(action_data["train_file"], action_data["output_dir"])
    samples[1]["videos"] = [broken["cut_avi"]]
    data_dir = write_sharegpt_dataset(
        str(tmp_path / "data"), "bad", samples, {"messages": "messages", "videos": "videos"}
    )
    with pytest.raises(ValueError) as err:
        _run(
            tmp_path,
            stage="fastslow_ar",
            model_name_or_path=tiny_qwen25vl,
            finetuning_type="full",
            dataset_dir=data_dir,
            dataset="bad",
        )
    _assert_named(str(err.value), "bad.json", 1, broken["cut_avi"])
    assert "cut short: only" in str(err.value)


def test_scst_cut_webm(tiny_qwen25vl, caption_data, broken, tmp_path):
    with open(os.path.join(caption_data["output_dir"], "dataset_info.json"), encoding="utf-8") as f:
        entry = json.load(f)[caption_data["train_dataset"]]
    samples = _samples(os.path.join(caption_data["output_dir"], entry["file_name"]), caption_data["output_dir"])
    samples[3]["videos"] = [broken["cut_webm"]]
    data_dir = write_sharegpt_dataset(str(tmp_path / "data"), "bad", samples, entry["columns"])
    with pytest.raises(ValueError) as err:
        _run(
            tmp_path,
            stage="scst",
            model_name_or_path=tiny_qwen25vl,
            finetuning_type="full",
            dataset_dir=data_dir,
            dataset="bad",
        )
    _assert_named(str(err.value), "bad.json", 3, broken["cut_webm"])


def test_sparc_align_empty_file(broken, tmp_path):
    from llamafactory_video.testing.synthetic_videos import make_alignment_dataset
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

    model = build_tiny_dual_encoder(str(tmp_path / "tiny-clip"), kind="clip")
    data = make_alignment_dataset(str(tmp_path / "align"), train_per_combo=1, num_test=2)
    with open(os.path.join(data["output_dir"], "dataset_info.json"), encoding="utf-8") as f:
        entry = json.load(f)[data["train_dataset"]]
    samples = _samples(os.path.join(data["output_dir"], entry["file_name"]), data["output_dir"])
    samples[0]["videos"] = [broken["empty"]]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "bad.json").write_text(json.dumps(samples))
    (data_dir / "dataset_info.json").write_text(json.dumps({"bad": dict(entry, file_name="bad.json")}))
    data_dir = str(data_dir)
    with pytest.raises(ValueError) as err:
        _run(
            tmp_path,
            stage="sparc_align",
            model_name_or_path=model,
            finetuning_type="full",
            dataset_dir=data_dir,
            dataset="bad",
            video_maxlen=4,
            video_fps=2.0,
        )
    _assert_named(str(err.value), "bad.json", 0, broken["empty"])
    assert "empty file (0 bytes)" in str(err.value)


def test_fastslow_ar_cutoff_that_cuts_video_tokens(tiny_qwen25vl, action_data, tmp_path):
    samples = _samples(action_data["train_file"], action_data["output_dir"])
    data_dir = write_sharegpt_dataset(
        str(tmp_path / "data"), "ok", samples, {"messages": "messages", "videos": "videos"}
    )
    with pytest.raises(ValueError) as err:
        _run(
            tmp_path,
            stage="fastslow_ar",
            model_name_or_path=tiny_qwen25vl,
            finetuning_type="full",
            dataset_dir=data_dir,
            dataset="ok",
            cutoff_len=12,
            video_maxlen=8,
            video_fps=2.0,
        )
    message = str(err.value)
    assert "dataset `ok.json` sample 0:" in message and "but cutoff_len is 12" in message
    assert "Raise cutoff_len to at least" in message
