"""``llamafactory-video check-data`` on small real videos plus a corrupt, an empty, a half-downloaded and a missing
one.

Runs the command in-process through ``llamafactory_video.cli.main`` (LlamaFactory is imported once per session).
"""

import json
import os

import numpy as np
import pytest

from llamafactory_video.cli import main
from llamafactory_video.testing.synthetic_videos import action_classes, render_clip, write_video
from llamafactory_video.tools.convert import convert_msrvtt


PROMPT = "<video>What action is being performed in this video?<ACTION>"
TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}
COLUMNS = {"messages": "messages", "videos": "videos", "action_label": "action_label"}


def _sample(videos, label, prompt=PROMPT):
    record = {
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": "An action."}],
        "videos": videos if isinstance(videos, list) else [videos],
    }
    if label is not None:
        record["action_label"] = label
    return record


def _register(data_dir, name, file_name, columns=COLUMNS, **extra):
    path = os.path.join(data_dir, "dataset_info.json")
    info = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
    info[name] = {"file_name": file_name, "formatting": "sharegpt", "columns": dict(columns), "tags": TAGS, **extra}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)


def _write(path, data):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("check_data")
    rng = np.random.default_rng(0)
    classes = action_classes(2)
    good = []
    for i in range(4):
        rel = f"videos/clip{i}.mp4"
        write_video(render_clip(classes[i % 2], rng, size=32, num_frames=4), data_dir / rel, fps=4)
        good.append(_sample(rel, i % 2))
    (data_dir / "videos" / "corrupt.mp4").write_bytes(b"this is not a video\n" * 20)
    (data_dir / "videos" / "empty.avi").write_bytes(b"")
    full = (data_dir / "videos" / "clip0.mp4").read_bytes()
    (data_dir / "videos" / "partial.mp4").write_bytes(full[: len(full) // 2])  # half-downloaded
    bad = [
        _sample("videos/corrupt.mp4", 0),  # 4
        _sample("videos/empty.avi", 1),  # 5
        _sample("videos/missing.mp4", 0),  # 6
        _sample("videos/partial.mp4", 1),  # 7
        _sample("videos/clip0.mp4", 5),  # 8: label outside [0, 2)
        _sample("videos/clip1.mp4", None),  # 9: no action_label key
        _sample("videos/clip2.mp4", 0, prompt="<video>What action is this?"),  # 10: no <ACTION>
        _sample(["videos/clip2.mp4", "videos/clip3.mp4"], 1),  # 11: 2 videos, 1 placeholder
    ]
    records = good + bad
    _write(data_dir / "clips.json", records)
    _write(data_dir / "clips_good.json", good)
    _write(data_dir / "clips_labels.json", [c.name for c in classes])
    _register(str(data_dir), "clips", "clips.json", label_names="clips_labels.json")
    _register(str(data_dir), "clips_good", "clips_good.json", label_names="clips_labels.json")
    return {"dir": str(data_dir), "records": records, "names": [c.name for c in classes]}


def _kinds(report):
    return {row["index"]: sorted({p["kind"] for p in row["problems"]}) for row in report["bad_samples"]}


def test_report_exit_code_and_clean_copy(clips, tmp_path, capsys):
    report_path, clean_path = tmp_path / "report.json", os.path.join(clips["dir"], "clips_clean.json")
    code = main(
        [
            "check-data",
            "--dataset",
            "clips",
            "--dataset-dir",
            clips["dir"],
            "--workers",
            "2",
            "--no-progress",
            "--output",
            str(report_path),
            "--write-clean",
            clean_path,
        ]
    )
    printed = capsys.readouterr().out
    assert code == 1
    report = json.loads(report_path.read_text())

    assert report["num_samples"] == 12 and report["num_bad_samples"] == 8 and not report["ok"]
    assert _kinds(report) == {
        4: ["undecodable_video"],
        5: ["empty_video"],
        6: ["missing_video"],
        7: ["undecodable_video"],
        8: ["bad_label"],
        9: ["missing_column"],
        10: ["action_token"],
        11: ["placeholders"],
    }
    missing = next(row for row in report["bad_samples"] if row["index"] == 6)["problems"][0]["detail"]
    assert os.path.join(clips["dir"], "videos", "missing.mp4") in missing
    videos = report["videos"]
    counts = (videos["unique"], videos["ok"], videos["missing"], videos["empty"], videos["undecodable"])
    assert counts == (8, 4, 1, 1, 2)
    stats = report["video_stats"]
    assert stats["width"]["min"] == stats["width"]["max"] == 32 and stats["frames"]["median"] == 4
    assert stats["fps"]["median"] == 4 and stats["duration"]["max"] == pytest.approx(1.0)
    missing_columns = report["columns"]["missing"]
    assert missing_columns == {"action_label": {"column": "action_label", "samples": 1, "optional": False}}
    labels = report["labels"]
    assert labels["num_classes"] == 2 and labels["invalid"] == 1
    valid = [r["action_label"] for r in clips["records"] if r.get("action_label") in (0, 1)]
    assert [(row["name"], row["count"]) for row in labels["histogram"]] == [
        (clips["names"][0], valid.count(0)),
        (clips["names"][1], valid.count(1)),
    ]
    assert "1 sample: missing video" in report["problems"]
    missing_rows = [row for row in report["bad_videos"] if row["kind"] == "missing_video"]
    assert missing_rows == [
        {
            "path": os.path.join(clips["dir"], "videos", "missing.mp4"),
            "kind": "missing_video",
            "reason": "missing",
            "samples": 1,
        }
    ]

    assert "RESULT: " in printed and "#6 (clips.json[6])" in printed and clips["names"][0] in printed
    assert report["clean_samples"] == 4
    with open(clean_path, encoding="utf-8") as f:
        assert json.load(f) == clips["records"][:4]

    # the clean copy passes (decoded inline this time)
    _register(clips["dir"], "clips_clean", "clips_clean.json", label_names="clips_labels.json")
    code = main(
        ["check-data", "--dataset", "clips_clean", "--dataset-dir", clips["dir"], "--workers", "1", "--no-progress"]
    )
    assert code == 0
    assert "RESULT: OK" in capsys.readouterr().out
    assert json.load(open(os.path.join(clips["dir"], "clips_clean_check.json")))["ok"] is True


def test_usage_errors_exit_2(clips, tmp_path, capsys):
    base = ["check-data", "--dataset-dir", clips["dir"], "--no-progress", "--output", str(tmp_path / "r.json")]
    assert main(base + ["--dataset", "nope"]) == 2
    assert "Undefined dataset nope" in capsys.readouterr().err
    assert main(base + ["--dataset", "clips", "--model", "some/model"]) == 2
    assert "--model needs --template" in capsys.readouterr().err
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    _register(str(tmp_path), "table", "data.csv")
    assert main(["check-data", "--dataset", "table", "--dataset-dir", str(tmp_path)]) == 2
    assert ".json / .jsonl" in capsys.readouterr().err


def test_caption_data_references(tmp_path, capsys):
    root = tmp_path / "msrvtt"
    rng = np.random.default_rng(1)
    for i in range(2):
        write_video(render_clip(action_classes(2)[i], rng, size=32, num_frames=4), root / "videos" / f"video{i}.mp4")
    info = {
        "videos": [{"video_id": f"video{i}", "category": i, "split": "train"} for i in range(3)],
        "sentences": [
            {"caption": f"caption {j} of video {i}", "video_id": f"video{i}", "sen_id": 10 * i + j}
            for i in range(3)
            for j in range(2 + i)
        ],
    }
    _write(root / "videodatainfo.json", info)
    data_dir = tmp_path / "data"
    convert_msrvtt(str(root / "videodatainfo.json"), str(root / "videos"), str(data_dir))

    code = main(
        [
            "check-data",
            "--dataset",
            "msrvtt_train_caption",
            "--dataset-dir",
            str(data_dir),
            "--workers",
            "1",
            "--no-progress",
            "--write-clean",
            str(data_dir / "clean.jsonl"),
        ]
    )
    assert code == 1  # video2 is missing
    report = json.load(open(data_dir / "msrvtt_train_caption_check.json"))
    assert report["references"]["per_sample"] == {"min": 2, "median": 3, "max": 4, "mean": 3}
    assert report["categories"]["histogram"] == {"music": 1, "people": 1, "gaming": 1}
    assert _kinds(report) == {2: ["missing_video"]}
    with open(data_dir / "clean.jsonl", encoding="utf-8") as f:
        assert [json.loads(line)["category"] for line in f] == ["music", "people"]
    assert "references per sample" in capsys.readouterr().out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from llamafactory_video.testing.tiny_model import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl"))


def test_token_count_against_cutoff(clips, tiny_model, tmp_path, capsys):
    args = [
        "check-data",
        "--dataset",
        "clips_good",
        "--dataset-dir",
        clips["dir"],
        "--workers",
        "1",
        "--no-progress",
        "--model",
        tiny_model,
        "--template",
        "qwen2_vl",
        "--video-maxlen",
        "4",
        "--video-fps",
        "2",
        "--video-max-pixels",
        "12544",
        "--output",
        str(tmp_path / "r.json"),
    ]
    assert main(args + ["--cutoff-len", "24"]) == 1
    report = json.load(open(tmp_path / "r.json"))
    tokens = report["tokens"]
    assert tokens["counted"] == "prompt through <ACTION>" and tokens["checked"] == 4
    assert [row["index"] for row in tokens["over_cutoff"]] == [0, 1, 2, 3]
    assert all(row["tokens"] > 24 and row["video_tokens"] > 0 for row in tokens["over_cutoff"])
    assert _kinds(report) == {i: ["over_cutoff"] for i in range(4)}
    needed = tokens["suggested_cutoff_len"]
    assert f"raise cutoff_len to >= {needed}" in capsys.readouterr().out

    assert main(args + ["--cutoff-len", str(needed)]) == 0
    report = json.load(open(tmp_path / "r.json"))
    assert report["ok"] and report["tokens"]["tokens"]["max"] == needed

    # what `video_token_pool_stride: 2` would save: 4 x 4 merged tokens per slot -> 2 x 2
    capsys.readouterr()
    assert main(args + ["--cutoff-len", str(needed), "--video-token-pool-stride", "2"]) == 0
    pooled = json.load(open(tmp_path / "r.json"))["tokens"]
    assert pooled["video_token_pooling"]["saving"] == 4.0
    assert pooled["video_token_pooling"]["video_tokens_unpooled"] == report["tokens"]["video_tokens"]
    assert pooled["video_tokens"]["max"] * 4 == report["tokens"]["video_tokens"]["max"]
    assert "video_token_pool_stride 2 (average)" in capsys.readouterr().out


def test_unwritable_dataset_folder_still_exits_0_when_clean(clips, tmp_path, capsys, monkeypatch):
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(clips["dir"], data_dir)
    (data_dir / "clips_good_check.json").mkdir()  # the default report path cannot be written (as on a read-only mount)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    code = main(["check-data", "--dataset", "clips_good", "--dataset-dir", str(data_dir), "--no-progress"])
    out, err = capsys.readouterr()
    assert "RESULT: OK" in out and code == 0, (out, err)
    fallback = tmp_path / "tmp" / "llamafactory_video_check" / "clips_good_check.json"
    assert "warning: cannot write the report" in err and str(fallback) in err
    assert json.load(open(fallback))["ok"]


def test_whole_numbers_keep_their_zeros():
    from llamafactory_video.tools.check_data import _fmt_stats

    assert _fmt_stats({"min": 140, "median": 140, "max": 140}, 0) == "140 / 140 / 140"
    assert _fmt_stats({"min": 30.0, "median": 100.0, "max": 2000.0}, 0) == "30 / 100 / 2000"
    assert _fmt_stats({"min": 2.5, "median": 10.0, "max": 3.25}) == "2.5 / 10 / 3.25"
