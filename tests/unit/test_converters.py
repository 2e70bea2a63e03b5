"""Dataset converters on small fixtures in each official format, quirks included.

UCF101: CRLF lines, 1-based classInd.txt, test list without labels, a missing video. SSv2: ``[something]``
brackets in templates, an entry without the filled ``label``, an unlabelled test.json, webm videos.
MSR-VTT: videodatainfo with 3 videos across train / validate / test and 2+ captions each. Malformed entries
fail with ``file:line``. Placeholder files stand in for videos (check-data is what decodes).
"""

import importlib.util
import json
import os

import pytest

from llamafactory_video.tools.convert import ConversionError, convert_msrvtt, convert_sthsthv2, convert_ucf101
from llamafactory_video.tools.convert.common import load_json_list
from llamafactory_video.tools.convert.ucf101 import class_phrase


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x00video")


def _crlf(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write("".join(line + "\r\n" for line in lines).encode())


# ------------------------------------------------------------------------------------------------ UCF101

UCF_CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
UCF_TRAIN = [
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1",
    "HandstandPushups/v_HandStandPushups_g08_c01.avi 2",
    "YoYo/v_YoYo_g08_c01.avi 3",
    "YoYo/v_YoYo_g09_c01.avi 3",
]
UCF_TEST = [
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
    "HandstandPushups/v_HandStandPushups_g01_c01.avi",
    "YoYo/v_YoYo_g01_c01.avi",  # missing on disk
]


def _ucf101(root, video_root=None, train=UCF_TRAIN, class_lines=None):
    split_dir = os.path.join(root, "ucfTrainTestlist")
    _crlf(os.path.join(split_dir, "classInd.txt"), class_lines or [f"{i + 1} {n}" for i, n in enumerate(UCF_CLASSES)])
    _crlf(os.path.join(split_dir, "trainlist01.txt"), train)
    _crlf(os.path.join(split_dir, "testlist01.txt"), UCF_TEST)
    video_root = video_root or os.path.join(root, "UCF-101")
    for line in UCF_TRAIN + UCF_TEST[:2]:
        _touch(os.path.join(video_root, line.split()[0]))
    return split_dir, video_root


def test_class_phrase():
    assert class_phrase("ApplyEyeMakeup") == "apply eye makeup"
    assert class_phrase("YoYo") == "yo yo"
    assert class_phrase("HandstandPushups") == "handstand pushups"
    assert class_phrase("Playing_Daf") == "playing daf"
    assert class_phrase("PlayingTV") == "playing tv"


def test_ucf101_official_layout(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "dataset_info.json").write_text(json.dumps({"other": {"file_name": "other.json"}}))
    split_dir, video_root = _ucf101(str(tmp_path), video_root=str(out / "UCF-101"))  # videos under the dataset dir

    summary = convert_ucf101(split_dir, video_root, str(out), split=1)

    train = _read(out / "ucf101_train.json")
    test = _read(out / "ucf101_test.json")
    assert [s["action_label"] for s in train] == [0, 1, 2, 2]  # 1-based classInd -> 0-based
    assert [s["action_label"] for s in test] == [0, 1, 2]  # test list has no labels: class from the folder
    first = train[0]
    assert first["messages"] == [
        {"role": "user", "content": "<video>Describe the action being performed in this video. <ACTION>"},
        {"role": "assistant", "content": "The action in this video is apply eye makeup."},
    ]
    assert first["videos"] == ["UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi"]  # relative to the dataset dir
    assert train[2]["messages"][1]["content"] == "The action in this video is yo yo."
    assert _read(out / "ucf101_labels.json") == UCF_CLASSES

    info = _read(out / "dataset_info.json")
    assert info["other"] == {"file_name": "other.json"}  # merged, not overwritten
    for part in ("train", "test"):
        entry = info[f"ucf101_{part}"]
        assert entry["file_name"] == f"ucf101_{part}.json" and entry["formatting"] == "sharegpt"
        assert entry["columns"] == {"messages": "messages", "videos": "videos", "action_label": "action_label"}
        assert entry["label_names"] == "ucf101_labels.json"

    assert summary.outputs == {"ucf101_train.json": 4, "ucf101_test.json": 3}
    assert summary.num_classes == 3
    assert summary.missing_videos == [str(out / "UCF-101" / "YoYo" / "v_YoYo_g01_c01.avi")]
    text = summary.to_text()
    assert "missing videos: 1 (kept" in text and "classes: 3" in text and "ucf101_train, ucf101_test" in text


def test_ucf101_script_skip_missing_absolute_paths(tmp_path, capsys):
    split_dir, video_root = _ucf101(str(tmp_path))
    out = tmp_path / "out"
    code = _script("prepare_ucf101").main(
        [
            "--split-dir",
            split_dir,
            "--video-root",
            video_root,
            "--split",
            "1",
            "--output-dir",
            str(out),
            "--skip-missing",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "ucf101_test.json" in printed and "dropped 1 samples" in printed
    test = _read(out / "ucf101_test.json")
    assert len(test) == 2
    assert all(os.path.isabs(s["videos"][0]) and os.path.isfile(s["videos"][0]) for s in test)  # root outside


def test_ucf101_finds_case_mismatched_files(tmp_path):
    split_dir, video_root = _ucf101(str(tmp_path))
    folder = os.path.join(video_root, "YoYo")
    os.rename(os.path.join(folder, "v_YoYo_g08_c01.avi"), os.path.join(folder, "v_yoyo_g08_c01.avi"))
    summary = convert_ucf101(split_dir, video_root, str(tmp_path / "out"))
    train = _read(tmp_path / "out" / "ucf101_train.json")
    assert train[2]["videos"][0].endswith("YoYo/v_yoyo_g08_c01.avi")
    assert len(summary.missing_videos) == 1


@pytest.mark.parametrize(
    "train, class_lines, expected",
    [
        (UCF_TRAIN[:1] + ["YoYo/v_YoYo_g08_c01.avi 2"], None, "trainlist01.txt:2: class index 2 does not match"),
        (UCF_TRAIN[:2] + ["YoYo/v_YoYo_g08_c01.avi"], None, "trainlist01.txt:3: expected '<Class>/<video> <index>'"),
        (["Surfing/v_Surfing_g01_c01.avi 1"], None, "trainlist01.txt:1: class folder 'Surfing' is not in classInd"),
        (UCF_TRAIN, ["1 ApplyEyeMakeup", "two HandstandPushups", "3 YoYo"], "classInd.txt:2: class index 'two'"),
        (UCF_TRAIN, ["1 ApplyEyeMakeup", "3 YoYo"], "classInd.txt: class indices must be 1..2"),
    ],
)
def test_ucf101_malformed_lines_name_file_and_line(tmp_path, train, class_lines, expected):
    split_dir, video_root = _ucf101(str(tmp_path), train=train, class_lines=class_lines)
    with pytest.raises(ConversionError) as err:
        convert_ucf101(split_dir, video_root, str(tmp_path / "out"))
    assert expected in str(err.value)
    assert not (tmp_path / "out" / "dataset_info.json").exists()  # nothing registered on error


# ------------------------------------------------------------------------------------------------ SSv2

SSV2_LABELS = {
    "Approaching something with your camera": "2",
    "Holding something next to something": "0",
    "Putting something on a surface": "1",
}
SSV2_TRAIN = [
    {
        "id": "78687",
        "label": "holding potato next to vicks vaporub bottle",
        "template": "Holding [something] next to [something]",
        "placeholders": ["potato", "vicks vaporub bottle"],
    },
    {"id": "42326", "template": "Putting [something] on a surface", "placeholders": ["a cup"]},  # no "label"
    {
        "id": "100904",
        "label": "approaching a chair with your camera",
        "template": "Approaching [something] with your camera",
        "placeholders": ["a chair"],
    },
]
SSV2_TEST = [{"id": "1420"}, {"id": "2022"}]


def _ssv2(root, train=SSV2_TRAIN):
    os.makedirs(root, exist_ok=True)
    paths = {}
    for name, data in (("labels", SSV2_LABELS), ("train", train), ("test", SSV2_TEST)):
        paths[name] = os.path.join(root, f"{name}.json")
        with open(paths[name], "w", encoding="utf-8") as f:
            json.dump(data, f, indent=4)
    videos = os.path.join(root, "20bn-something-something-v2")
    for vid in ("78687", "42326", "1420", "2022"):  # 100904 is missing
        _touch(os.path.join(videos, f"{vid}.webm"))
    return paths, videos


def test_sthsthv2_train_and_unlabelled_test(tmp_path):
    paths, videos = _ssv2(str(tmp_path / "ssv2"))
    out = tmp_path / "data"
    summary = convert_sthsthv2(paths["labels"], paths["train"], videos, str(out / "sthsthv2_train.json"))
    train = _read(out / "sthsthv2_train.json")
    assert [s["action_label"] for s in train] == [0, 1, 2]  # official indices, brackets removed before matching
    assert train[0]["messages"][0]["content"] == "<video>What is happening in this video? <ACTION>"
    assert train[0]["messages"][1]["content"] == "In this video, holding potato next to vicks vaporub bottle."
    assert train[1]["messages"][1]["content"] == "In this video, putting something on a surface."  # bare template
    assert train[0]["videos"] == [os.path.join(videos, "78687.webm")]
    assert _read(out / "sthsthv2_labels.json") == [
        "Holding something next to something",
        "Putting something on a surface",
        "Approaching something with your camera",
    ]
    assert summary.missing_videos == [os.path.join(videos, "100904.webm")] and summary.num_classes == 3

    summary = convert_sthsthv2(
        paths["labels"], paths["test"], videos, str(out / "sthsthv2_test.json"), skip_missing=True
    )
    test = _read(out / "sthsthv2_test.json")
    assert len(test) == 2 and all("action_label" not in s for s in test)
    assert test[0]["messages"][1] == {"role": "assistant", "content": ""}
    info = _read(out / "dataset_info.json")
    assert info["sthsthv2_train"]["columns"]["action_label"] == "action_label"
    assert info["sthsthv2_train"]["label_names"] == "sthsthv2_labels.json"
    assert "action_label" not in info["sthsthv2_test"]["columns"] and "label_names" not in info["sthsthv2_test"]
    assert any("no labels" in note for note in summary.notes)


def test_sthsthv2_unknown_template_names_file_line_and_key(tmp_path, capsys):
    bad = SSV2_TRAIN[:2] + [dict(SSV2_TRAIN[2], template="Spinning [something] around")]
    paths, videos = _ssv2(str(tmp_path / "ssv2"), train=bad)
    with open(paths["train"], encoding="utf-8") as f:
        line = next(i for i, text in enumerate(f, start=1) if "100904" in text) - 1  # the entry's opening brace
    code = _script("prepare_sthsthv2").main(
        [
            "--labels",
            paths["labels"],
            "--annotations",
            paths["train"],
            "--video-root",
            videos,
            "--output",
            str(tmp_path / "data" / "x.json"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert f"train.json:{line}: entry 2, key 'template'" in err and "'Spinning something around'" in err


def test_sthsthv2_bad_labels_file(tmp_path):
    paths, videos = _ssv2(str(tmp_path / "ssv2"))
    with open(paths["labels"], "w", encoding="utf-8") as f:
        json.dump({"Holding something": "zero"}, f)
    with pytest.raises(ConversionError, match="labels.json: key 'Holding something': index 'zero' is not an integer"):
        convert_sthsthv2(paths["labels"], paths["train"], videos, str(tmp_path / "x.json"))


# ------------------------------------------------------------------------------------------------ MSR-VTT


def _msrvtt_info():
    return {
        "info": {"year": 2016},
        "videos": [
            {
                "category": 9,
                "url": "u0",
                "video_id": "video0",
                "start time": 1.0,
                "end time": 5.0,
                "split": "train",
                "id": 0,
            },
            {
                "category": 0,
                "url": "u1",
                "video_id": "video1",
                "start time": 2.0,
                "end time": 9.0,
                "split": "validate",
                "id": 1,
            },
            {
                "category": 42,
                "url": "u2",
                "video_id": "video2",
                "start time": 0.0,
                "end time": 8.0,
                "split": "test",
                "id": 2,
            },
        ],
        "sentences": [
            {"caption": "a car drives down the road", "video_id": "video0", "sen_id": 1},
            {"caption": "a red  car is driving", "video_id": "video0", "sen_id": 0},
            {"caption": "a man plays guitar", "video_id": "video1", "sen_id": 2},
            {"caption": "someone is singing", "video_id": "video1", "sen_id": 3},
            {"caption": "a cartoon dog runs", "video_id": "video2", "sen_id": 4},
            {"caption": "an animated dog", "video_id": "video2", "sen_id": 5},
            {"caption": "a dog", "video_id": "video2", "sen_id": 6},
        ],
    }


def _msrvtt(root, data=None):
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, "train_val_videodatainfo.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data or _msrvtt_info(), f, indent=2)
    videos = os.path.join(root, "videos")
    for vid in ("video0", "video1"):  # video2 is missing
        _touch(os.path.join(videos, f"{vid}.mp4"))
    return path, videos


def test_msrvtt_sft_and_caption_files(tmp_path):
    path, videos = _msrvtt(str(tmp_path / "msrvtt"))
    out = tmp_path / "data"
    summary = convert_msrvtt(path, videos, str(out))

    sft = _read(out / "msrvtt_train_sft.json")
    assert [s["messages"][1]["content"] for s in sft] == ["a red car is driving", "a car drives down the road"]
    assert sft[0]["messages"][0]["content"] == "<video>Describe this video in one sentence."
    caption = _read(out / "msrvtt_train_caption.json")
    assert len(caption) == 1
    assert caption[0]["references"] == ["a red car is driving", "a car drives down the road"]
    assert caption[0]["messages"][1]["content"] == "a red car is driving"  # the first caption (lowest sen_id)
    assert caption[0]["category"] == "vehicles/autos"
    assert _read(out / "msrvtt_validate_caption.json")[0]["category"] == "music"
    test_caption = _read(out / "msrvtt_test_caption.json")
    assert test_caption[0]["category"] is None and len(test_caption[0]["references"]) == 3  # unknown category 42
    assert len(_read(out / "msrvtt_test_sft.json")) == 3

    info = _read(out / "dataset_info.json")
    assert set(info) == {f"msrvtt_{s}_{k}" for s in ("train", "validate", "test") for k in ("sft", "caption")}
    assert info["msrvtt_train_caption"]["columns"] == {
        "messages": "messages",
        "videos": "videos",
        "references": "references",
        "category": "category",
    }
    assert info["msrvtt_train_sft"]["columns"] == {"messages": "messages", "videos": "videos"}
    assert summary.missing_videos == [os.path.join(videos, "video2.mp4")]
    assert summary.num_samples == 7 + 3


def test_msrvtt_script_skip_missing(tmp_path, capsys):
    path, videos = _msrvtt(str(tmp_path / "msrvtt"))
    out = tmp_path / "data"
    code = _script("prepare_msrvtt").main(
        ["--annotations", path, "--video-root", videos, "--output-dir", str(out), "--skip-missing"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "msrvtt_test_caption.json" in printed and "dropped 4 samples" in printed
    assert _read(out / "msrvtt_test_caption.json") == [] and _read(out / "msrvtt_test_sft.json") == []


def test_msrvtt_unknown_video_names_line(tmp_path):
    data = _msrvtt_info()
    data["sentences"][3]["video_id"] = "video77"
    path, videos = _msrvtt(str(tmp_path / "msrvtt"), data)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    line = next(i for i, text in enumerate(lines, start=1) if "video77" in text) - 2  # "{", "caption", "video_id"
    with pytest.raises(ConversionError) as err:
        convert_msrvtt(path, videos, str(tmp_path / "data"))
    assert str(err.value).startswith(f"{path}:{line}: sentences[3], key 'video_id': video 'video77'")


def test_json_entry_lines(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('[\n  {"a": 1},\n\n  {"b": [1,\n 2]}, {"c": 3}\n]\n', encoding="utf-8")
    entries, lines, _ = load_json_list(str(path))
    assert entries == [{"a": 1}, {"b": [1, 2]}, {"c": 3}] and lines == [2, 4, 5]
    path.write_text('[\n  {"a": 1},\n  {"b": 2\n]\n', encoding="utf-8")
    with pytest.raises(ConversionError, match=r"x.json:4: invalid JSON"):
        load_json_list(str(path))
