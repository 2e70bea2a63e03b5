"""Valley annotations -> sharegpt video data (`scripts/prepare_valley.py`), on files laid out like the releases:
Valley-webvid2M-Pretrain-703K's `chat.json` (a JSON array; `video` = `<webvid page folder>/<id>.mp4`, the `<video>`
placeholder after the question) and Valley-Instruct-73k (a `source` folder, ids without `.mp4`, multi-turn); plus
VideoInstruct-100K's `VideoInstruct100K.json` (`{"q", "a", "video_id": "v_<youtube id>"}`) through the VideoChatGPT
converter, the data of HiLight's stage 2. Placeholder files stand in for videos."""

import importlib.util
import json
import os

import pytest

from llamafactory_video.tools.convert import ConversionError, convert_valley, convert_videochatgpt
from llamafactory_video.tools.convert.valley import valley_video_candidates

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"\x00video")


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _turns(*values):
    return [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(values)]


PRETRAIN = [
    {
        "id": "1066674784",
        "video": "000001_000050/1066674784.mp4",
        "conversations": _turns("Describe the following video concisely.\n<video>", "Woman reading a book in a park."),
    },
    {
        "id": "1024711013",
        "video": "000001_000050/1024711013.mp4",
        "conversations": _turns("<video>\nWhat is happening in the video?", "Aerial view of a coastline at sunset."),
    },
    {
        "id": "1009999999",
        "video": "000051_000100/1009999999.mp4",
        "conversations": _turns("Give a short caption.\n<video>", "A missing clip."),
    },
]
INSTRUCT = [
    {
        "id": "v_jukin_1",
        "source": "jukin",
        "video": "jukin_0001",
        "conversations": _turns(
            "What does the dog do in <video>?", "It jumps into the pool.", "Is it safe?", "Yes, the water is shallow."
        ),
    },
    {"id": "v_webvid_2", "video": "1066674784", "conversations": _turns("Why is she smiling?", "She likes the book.")},
]


@pytest.fixture
def valley(tmp_path):
    root = tmp_path / "videos"
    for rel in ("000001_000050/1066674784.mp4", "000001_000050/1024711013.mp4", "jukin/jukin_0001.mp4"):
        _touch(root / rel)
    _touch(root / "webvid" / "1066674784.mp4")
    chat = tmp_path / "Valley-webvid2M-Pretrain-703K" / "chat.json"
    chat.parent.mkdir()
    chat.write_text(json.dumps(PRETRAIN, indent=2))
    instruct = tmp_path / "valley_instruct_73k.jsonl"
    instruct.write_text("\n".join(json.dumps(e) for e in INSTRUCT) + "\n")
    return root, chat, instruct


def test_candidates_follow_valleys_loader():
    assert valley_video_candidates("a/1.mp4") == ["a/1.mp4", "webvid/a/1.mp4"]
    assert valley_video_candidates("clip", "jukin") == [
        "clip.mp4",
        "clip",
        "jukin/clip.mp4",
        "jukin/clip",
        "webvid/clip.mp4",
        "webvid/clip",
    ]


def test_pretrain_and_instruct_files(valley, tmp_path):
    root, chat, instruct = valley
    out = tmp_path / "data"
    summary = convert_valley([str(chat), str(instruct)], str(root), str(out))
    rows = json.loads((out / "valley.json").read_text())
    assert len(rows) == 5 and len(summary.missing_videos) == 1 and summary.dropped_samples == 0
    assert rows[0]["messages"] == [
        {"role": "user", "content": "<video>Describe the following video concisely."},
        {"role": "assistant", "content": "Woman reading a book in a park."},
    ]
    assert rows[0]["videos"] == [str(root / "000001_000050" / "1066674784.mp4")]
    assert rows[1]["messages"][0]["content"] == "<video>What is happening in the video?"
    assert rows[2]["videos"] == [str(root / "000051_000100" / "1009999999.mp4")]  # kept, counted as missing
    assert [m["role"] for m in rows[3]["messages"]] == ["user", "assistant", "user", "assistant"]
    assert rows[3]["messages"][0]["content"] == "What does the dog do in <video>?"  # mid-text: left in place
    assert rows[3]["videos"] == [str(root / "jukin" / "jukin_0001.mp4")]  # <source>/<video>.mp4
    assert rows[4]["messages"][0]["content"] == "<video>Why is she smiling?"  # added
    assert rows[4]["videos"] == [str(root / "webvid" / "1066674784.mp4")]  # no source: webvid/
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["valley"]["columns"] == {"messages": "messages", "videos": "videos"}
    text = summary.to_text()
    assert "6 question/answer turns in 5 samples from 2 file(s)" in text
    assert "source jukin: 1" in text and "source webvid (no source): 4" in text


def test_script_skip_missing_and_relative_paths(valley, tmp_path, capsys):
    root, chat, _ = valley
    code = _script("prepare_valley").main(
        ["--annotations", str(chat), "--video-root", str(root), "--output-dir", str(tmp_path), "--skip-missing"]
    )
    assert code == 0
    rows = json.loads((tmp_path / "valley.json").read_text())
    assert [r["videos"] for r in rows] == [
        ["videos/000001_000050/1066674784.mp4"],  # under the dataset dir: relative to it (media_dir)
        ["videos/000001_000050/1024711013.mp4"],
    ]
    printed = capsys.readouterr().out
    assert "missing videos: 1 (dropped 1 samples" in printed and "1009999999.mp4" in printed


def test_converted_entry_is_read_by_the_host(valley, tmp_path):
    from llamafactory.data.parser import get_dataset_list

    root, chat, _ = valley
    convert_valley(str(chat), str(root), str(tmp_path / "data"), prefix="valley_703k")
    (attr,) = get_dataset_list(["valley_703k"], str(tmp_path / "data"))
    assert attr.formatting == "sharegpt" and attr.messages == "messages" and attr.videos == "videos"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"id": "7", "conversations": _turns("q", "a")}, "entry 1 (id '7'), key 'video': missing video path"),
        ({"id": "7", "video": "a.mp4", "conversations": _turns("q")}, "key 'conversations': needs at least one"),
        (
            {
                "id": "7",
                "video": "a.mp4",
                "conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}],
            },
            "turns must alternate",
        ),
        ({"id": "7", "video": "a.mp4", "conversations": _turns("<video> q <video>", "a")}, "2 visual placeholders"),
        ({"id": "7", "video": "a.mp4", "conversations": _turns("q", "<video> a")}, "placeholder is in gpt turn 1"),
        ({"id": "7", "video": "a.mp4", "source": 3, "conversations": _turns("q", "a")}, "key 'source'"),
        ("not an object", "entry 1, key 'id': expected an object, got str"),
    ],
)
def test_malformed_entries_name_file_line_sample_and_key(tmp_path, entry, expected):
    _touch(tmp_path / "videos" / "a.mp4")
    ann = tmp_path / "chat.json"
    ann.write_text(
        json.dumps([{"id": "6", "video": "a.mp4", "conversations": _turns("<video>q", "a")}, entry], indent=2)
    )
    with pytest.raises(ConversionError) as err:
        convert_valley(str(ann), str(tmp_path / "videos"), str(tmp_path / "out"))
    message = str(err.value)
    assert message.startswith(f"{ann}:") and expected in message
    assert message.split(":")[1].isdigit()  # the entry's line


def test_script_reports_errors_and_a_missing_video_root(tmp_path, capsys):
    (tmp_path / "chat.json").write_text('[{"id": "1", "video": "a.mp4",}]')
    script = _script("prepare_valley")
    args = ["--annotations", str(tmp_path / "chat.json"), "--output-dir", str(tmp_path / "out")]
    assert script.main([*args, "--video-root", str(tmp_path / "nowhere")]) == 1
    assert "video folder not found" in capsys.readouterr().err
    (tmp_path / "videos").mkdir()
    assert script.main([*args, "--video-root", str(tmp_path / "videos")]) == 1
    assert "chat.json:1: invalid JSON" in capsys.readouterr().err


def test_videoinstruct_100k_layout_goes_through_the_videochatgpt_converter(tmp_path):
    r"""HiLight's stage 2 data: `VideoInstruct100K.json` as released (q / a / video_id with the ActivityNet `v_`
    prefix, videos downloaded as `v_<id>.mp4` or `.mkv`) -> `videochatgpt_sft`."""
    videos = tmp_path / "activitynet_videos"
    _touch(videos / "v_k_ZXmr8pmrs.mkv")
    _touch(videos / "v_-MbZ-W0AbN0.mp4")
    release = [
        {"q": "What is the man doing?", "a": "He plays the guitar on a stage.", "video_id": "v_k_ZXmr8pmrs"},
        {"q": "Describe the video in detail.", "a": "A man jumps rope in a gym.", "video_id": "v_-MbZ-W0AbN0"},
    ]
    (tmp_path / "VideoInstruct100K.json").write_text(json.dumps(release))
    convert_videochatgpt(str(tmp_path / "VideoInstruct100K.json"), str(videos), str(tmp_path / "data"))
    rows = json.loads((tmp_path / "data" / "videochatgpt_sft.json").read_text())
    assert [(r["messages"][0]["content"], os.path.basename(r["videos"][0])) for r in rows] == [
        ("<video>What is the man doing?", "v_k_ZXmr8pmrs.mkv"),
        ("<video>Describe the video in detail.", "v_-MbZ-W0AbN0.mp4"),
    ]
    assert "videochatgpt_sft" in json.loads((tmp_path / "data" / "dataset_info.json").read_text())
