"""Every bad input of `stage: action_cls` stops before training with a message naming the file, sample and key.

These run the host's own `run_exp` in-process (the same code path `llamafactory-cli train` takes after
parsing), because each check fires before the model is loaded.
"""

import json
import logging
import os

import pytest

from .helpers import read_json, write_sharegpt_dataset


pytestmark = pytest.mark.e2e


def _base_samples(action_data, n=6):
    with open(action_data["train_file"], encoding="utf-8") as f:
        samples = json.load(f)[:n]
    for sample in samples:
        sample["videos"] = [os.path.join(action_data["output_dir"], v) for v in sample["videos"]]
    return samples


def _write(tmp_path, samples, columns=None, name="bad"):
    columns = columns or {"messages": "messages", "videos": "videos", "action_label": "action_label"}
    return write_sharegpt_dataset(str(tmp_path / "data"), name, samples, columns)


def _run(tiny_qwen25vl, data_dir, tmp_path, **overrides):
    from llamafactory.train.tuner import run_exp

    args = dict(
        stage="action_cls",
        model_name_or_path=tiny_qwen25vl,
        do_train=True,
        finetuning_type="lora",
        lora_rank=4,
        template="qwen2_vl",
        dataset_dir=data_dir,
        dataset="bad",
        cutoff_len=512,
        num_action_classes=4,
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
    args.update(overrides)
    run_exp(args)


def test_missing_action_token_lists_indices(tiny_qwen25vl, action_data, tmp_path):
    samples = _base_samples(action_data)
    for i in (1, 3):
        samples[i]["messages"][0]["content"] = samples[i]["messages"][0]["content"].replace("<ACTION>", "")
    data_dir = _write(tmp_path, samples)
    with pytest.raises(ValueError) as err:
        _run(tiny_qwen25vl, data_dir, tmp_path)
    message = str(err.value)
    assert "2 of 6 train samples" in message and "indices [1, 3]" in message and "bad.json" in message
    assert "no <ACTION> token" in message and "action_invalid_samples: skip" in message


def test_skip_mode_drops_and_counts(tiny_qwen25vl, action_data, tmp_path):
    samples = _base_samples(action_data)
    samples[2]["messages"][0]["content"] = samples[2]["messages"][0]["content"].replace("<ACTION>", "")
    data_dir = _write(tmp_path, samples)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("llamafactory.video")  # our messages live under the host's logger hierarchy
    logger.addHandler(handler)
    try:
        _run(tiny_qwen25vl, data_dir, tmp_path, action_invalid_samples="skip")
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in records]
    assert any("Skipping 1 of 6 train samples" in m and "indices [2]" in m for m in messages), messages
    assert os.path.isfile(tmp_path / "out" / "action_decoder.safetensors")
    assert read_json(str(tmp_path / "out" / "trainer_state.json"))["global_step"] == 1


@pytest.mark.parametrize(
    "label, expected",
    [
        (7, "action_label 7 is outside [0, 4)"),
        (-1, "action_label -1 is outside [0, 4)"),
        (1.5, "action_label 1.5 is not an integer"),
        (None, "action_label is None"),
    ],
)
def test_bad_labels(tiny_qwen25vl, action_data, tmp_path, label, expected):
    samples = _base_samples(action_data)
    samples[4]["action_label"] = label
    data_dir = _write(tmp_path, samples)
    with pytest.raises(
        ValueError, match="sample 4: " + expected.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        _run(tiny_qwen25vl, data_dir, tmp_path)


def test_missing_and_undecodable_videos(tiny_qwen25vl, action_data, tmp_path):
    samples = _base_samples(action_data)
    samples[0]["videos"] = [str(tmp_path / "nowhere.mp4")]
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2048))
    samples[5]["videos"] = [str(corrupt)]
    data_dir = _write(tmp_path, samples)
    with pytest.raises(ValueError) as err:
        _run(tiny_qwen25vl, data_dir, tmp_path)
    message = str(err.value)
    # the pre-training video probe (data/video_probe.py) finds both before any processor runs
    assert f"dataset `bad.json` sample 0: video {tmp_path / 'nowhere.mp4'}: missing" in message
    assert f"dataset `bad.json` sample 5: video {corrupt}: cannot open" in message


def test_cutoff_that_would_cut_video_tokens(tiny_qwen25vl, action_data, tmp_path):
    data_dir = _write(tmp_path, _base_samples(action_data))
    with pytest.raises(
        ValueError,
        match=r"cutoff_len is 12: truncation would cut the video tokens or <ACTION>\. "
        r"Raise cutoff_len to at least \d+",
    ):
        _run(tiny_qwen25vl, data_dir, tmp_path, cutoff_len=12)


def test_action_token_before_video(tiny_qwen25vl, action_data, tmp_path):
    samples = _base_samples(action_data)
    samples[2]["messages"][0]["content"] = "<ACTION><video>What is this?"
    data_dir = _write(tmp_path, samples)
    with pytest.raises(ValueError, match="sample 2: <ACTION> comes before the video"):
        _run(tiny_qwen25vl, data_dir, tmp_path)


def test_declared_column_missing_from_data(tiny_qwen25vl, action_data, tmp_path):
    data_dir = _write(
        tmp_path,
        _base_samples(action_data),
        columns={"messages": "messages", "videos": "videos", "action_label": "label"},
    )
    with pytest.raises(
        ValueError,
        match=r"Dataset `bad.json` declares the column `action_label` as \"label\".*has no column \"label\"",
    ):
        _run(tiny_qwen25vl, data_dir, tmp_path)


def test_column_not_declared(tiny_qwen25vl, action_data, tmp_path):
    data_dir = _write(tmp_path, _base_samples(action_data), columns={"messages": "messages", "videos": "videos"})
    with pytest.raises(
        ValueError, match=r"needs the `action_label` column, but its dataset_info.json entry does not declare it"
    ):
        _run(tiny_qwen25vl, data_dir, tmp_path)


def test_label_names_must_match_num_classes(tiny_qwen25vl, action_data, tmp_path):
    data_dir = _write(tmp_path, _base_samples(action_data))
    names = tmp_path / "names.json"
    names.write_text(json.dumps(["a", "b", "c"]))
    with pytest.raises(ValueError, match="num_action_classes is 4 but the label-names file lists 3"):
        _run(tiny_qwen25vl, data_dir, tmp_path, action_label_names=str(names))


def test_string_label_among_integers_names_file_sample_and_key(tiny_qwen25vl, action_data, tmp_path):
    samples = _base_samples(action_data)
    samples[4]["action_label"] = "walk"  # `datasets` cannot store a column of ints and one string
    data_dir = _write(tmp_path, samples)
    with pytest.raises(ValueError) as err:
        _run(tiny_qwen25vl, data_dir, tmp_path)
    message = str(err.value)
    assert f"{os.path.join(data_dir, 'bad.json')} sample 4: key `action_label` is a string ('walk')" in message
    assert "other samples of the file hold a number" in message
