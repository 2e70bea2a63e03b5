"""LLaVA-Video-178K style annotations -> sharegpt video data (`scripts/prepare_llava_video.py`)."""

import json
import os

import pytest

from llamafactory_video.tools.convert import ConversionError, convert_llava_video


def _touch(path) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\0")


def _entry(video, turns, **extra):
    conversations = [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(turns)]
    return {"id": video, "video": video, "conversations": conversations, **extra}


def test_convert_json_and_jsonl_multi_turn(tmp_path):
    root = tmp_path / "videos"
    for name in ("academic/a.mp4", "youtube/b.mp4"):
        _touch(root / name)
    cap = tmp_path / "0_30_s_academic_cap_processed.json"
    cap.write_text(
        json.dumps(
            [
                _entry("academic/a.mp4", ["<image>\nDescribe the video.", "A man rides a bike."], data_source="cap"),
                _entry("missing/c.mp4", ["<image>\nDescribe.", "Nothing."], data_source="cap"),
            ],
            indent=1,
        )
    )
    qa = tmp_path / "oe_qa.jsonl"
    qa.write_text(
        json.dumps(_entry("youtube/b.mp4", ["What colour is the car?", "Red.", "And the sky?", "Blue."])) + "\n\n"
    )
    out = tmp_path / "data"
    summary = convert_llava_video([str(cap), str(qa)], str(root), str(out), skip_missing=True)
    rows = json.loads((out / "llava_video.json").read_text())
    assert len(rows) == 2 and summary.dropped_samples == 1 and len(summary.missing_videos) == 1
    assert rows[0]["messages"][0] == {"role": "user", "content": "<video>Describe the video."}
    assert rows[0]["videos"] == [str(root / "academic/a.mp4")]
    assert [m["role"] for m in rows[1]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert rows[1]["messages"][0]["content"] == "<video>What colour is the car?"  # placeholder added
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["llava_video"]["columns"] == {"messages": "messages", "videos": "videos"}
    assert "3 question/answer turns in 2 samples" in summary.to_text()


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        (
            {"video": "a.mp4", "conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]},
            "alternate",
        ),
        ({"conversations": []}, "'video'"),
        (
            {
                "video": "a.mp4",
                "conversations": [{"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "y"}],
            },
            "more than one",
        ),
        ({"video": "a.mp4", "conversations": [{"from": "human", "value": "q"}]}, "at least one"),
    ],
)
def test_malformed_entries_name_file_line_and_key(tmp_path, entry, match):
    _touch(tmp_path / "videos" / "a.mp4")
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps([_entry("a.mp4", ["<image>q", "a"]), entry], indent=1))
    with pytest.raises(ConversionError, match=match) as err:
        convert_llava_video([str(ann)], str(tmp_path / "videos"), str(tmp_path / "out"))
    assert str(err.value).startswith(f"{ann}:")
    assert "entry 1" in str(err.value)
