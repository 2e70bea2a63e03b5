"""VideoChatGPT / VideoInstruct-100K and Condensed Movies converters on small fixtures with their quirks.

VideoChatGPT: video_id / video_name / image_id keys, q / Q / question, consistency QA (Q1 + Q2), ids without
extension (.mp4 / .mkv / .webm on disk), ids without the ActivityNet ``v_`` prefix, a CSV with a BOM, a
duplicate row, a missing video. CMD: year sub-folders, a flattened video, a pandas float year, a description
without a clips.csv row, a clip without description. Placeholder files stand in for videos.
"""

import importlib.util
import json
import os

import pytest

from llamafactory_video.tools.convert import ConversionError, convert_condensed_movies, convert_videochatgpt
from llamafactory_video.tools.convert.videoqa import video_candidates

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


def _write(path, text, bom=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        f.write(text)


def test_video_candidates():
    assert video_candidates("v_abc")[:2] == ["v_abc.mp4", "v_abc.mkv"]
    assert "abc.webm" in video_candidates("v_abc")
    assert "v_abc.mp4" in video_candidates("abc")
    assert video_candidates("v_abc.mkv")[0] == "v_abc.mkv"
    assert video_candidates("clip.2.3", exts=["mp4"])[0] == "clip.2.3.mp4"  # dots that are not extensions


def _videochatgpt(tmp_path):
    videos = tmp_path / "videos"
    for name in ("v_aaa.mp4", "v_bbb.mkv", "v_ccc.webm", "v_ddd.mp4", "V_EEE.MP4"):
        _touch(str(videos / name))
    instruct = [
        {"video_id": "v_aaa", "q": "What is the man doing?", "a": "He is  cooking."},
        {"video_id": "bbb", "q": "Where is it?", "a": "In a park."},  # no v_ prefix, .mkv on disk
        {"video_id": "v_aaa", "q": "What is the man doing?", "a": "He is cooking."},  # duplicate
        {"video_id": "v_missing", "q": "Q?", "a": "A."},
    ]
    generic = [{"video_name": "v_ccc", "Q": "What colour is the car?", "A": "Red."}]
    consistency = [{"video_name": "v_ddd", "Q1": "Who speaks?", "Q2": "Which person talks?", "A": "The girl."}]
    _write(str(tmp_path / "instruct.json"), json.dumps(instruct, indent=2))
    _write(str(tmp_path / "generic_qa.json"), json.dumps(generic))
    _write(str(tmp_path / "consistency_qa.json"), json.dumps(consistency))
    _write(str(tmp_path / "cleaned.csv"), "image_id,question,answer\r\nv_eee.mp4,How many?,Two.\r\n", bom=True)
    files = [str(tmp_path / n) for n in ("instruct.json", "generic_qa.json", "consistency_qa.json", "cleaned.csv")]
    return files, str(videos)


def test_videochatgpt_key_variants_and_lookup(tmp_path):
    files, videos = _videochatgpt(tmp_path)
    out = tmp_path / "data"
    summary = convert_videochatgpt(files, videos, str(out))
    rows = _read(out / "videochatgpt_sft.json")
    pairs = [
        (r["videos"][0].rsplit("/", 1)[-1], r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows
    ]
    assert pairs == [
        ("v_aaa.mp4", "<video>What is the man doing?", "He is cooking."),
        ("v_bbb.mkv", "<video>Where is it?", "In a park."),
        ("v_missing.mp4", "<video>Q?", "A."),
        ("v_ccc.webm", "<video>What colour is the car?", "Red."),
        ("v_ddd.mp4", "<video>Who speaks?", "The girl."),
        ("v_ddd.mp4", "<video>Which person talks?", "The girl."),
        ("V_EEE.MP4", "<video>How many?", "Two."),
    ]
    assert all(os.path.isabs(r["videos"][0]) for r in rows)  # videos outside the dataset dir
    assert summary.missing_videos == [os.path.join(videos, "v_missing.mp4")]
    assert any("1 duplicate" in note for note in summary.notes)
    assert any("video_id: 4" in note and "video_name: 2" in note and "image_id: 1" in note for note in summary.notes)
    info = _read(out / "dataset_info.json")
    assert info["videochatgpt_sft"]["columns"] == {"messages": "messages", "videos": "videos"}


def test_videochatgpt_script_skip_missing(tmp_path, capsys):
    files, videos = _videochatgpt(tmp_path)
    out = tmp_path / "data"
    code = _script("prepare_videochatgpt").main(
        ["--annotations", *files, "--video-root", videos, "--output-dir", str(out), "--skip-missing"]
    )
    assert code == 0
    rows = _read(out / "videochatgpt_sft.json")
    assert len(rows) == 6 and not any("missing" in r["videos"][0] for r in rows)
    printed = capsys.readouterr().out
    assert "missing videos: 1 (dropped 1 samples" in printed and "v_missing.mp4" in printed


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[\n  {"q": "x", "a": "y"}\n]', ":2: entry 0, key 'video_id': no video key"),
        ('[\n  {"video_id": "v_aaa", "a": "y"},\n  {"video_id": "v_aaa", "q": "x"}\n]', ":2: entry 0, key 'q'"),
        (
            '[\n  {"video_id": "v_aaa", "q": "x", "a": "y"},\n  {"video_id": "v_aaa", "q": "x"}\n]',
            ":3: entry 1, key 'a'",
        ),
        ('[{"video_id": "v_aaa", "q": "x", "a": "y"},]', "invalid JSON"),
    ],
)
def test_videochatgpt_malformed_name_file_line_key(tmp_path, content, expected):
    _touch(str(tmp_path / "videos" / "v_aaa.mp4"))
    _write(str(tmp_path / "bad.json"), content)
    with pytest.raises(ConversionError) as err:
        convert_videochatgpt(str(tmp_path / "bad.json"), str(tmp_path / "videos"), str(tmp_path / "data"))
    assert str(err.value).startswith(str(tmp_path / "bad.json"))
    assert expected in str(err.value)


def test_videochatgpt_csv_line_numbers(tmp_path, capsys):
    _touch(str(tmp_path / "videos" / "v_aaa.mp4"))
    _write(str(tmp_path / "qa.csv"), "video_id,q,a\nv_aaa,ok?,yes\n\nv_aaa,,no answer question\n")
    code = _script("prepare_videochatgpt").main(
        ["--annotations", str(tmp_path / "qa.csv"), "--video-root", str(tmp_path / "videos"), "--output-dir", "x"]
    )
    assert code == 1
    assert f"{tmp_path / 'qa.csv'}:4: entry 1, key 'q'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ Condensed Movies


def _cmd(tmp_path):
    videos = tmp_path / "videos"
    _touch(str(videos / "2011" / "AAA.mkv"))
    _touch(str(videos / "2012" / "BBB.mp4"))
    _touch(str(videos / "CCC.mkv"))  # flattened layout
    _write(
        str(tmp_path / "clips.csv"),
        "videoid,imdbid,upload_year,clip_idx\nAAA,tt1,2011,1\nBBB,tt1,2012.0,2\nCCC,tt2,2013,1\nDDD,tt2,2013,2\n"
        "EEE,tt3,2014,1\n",
    )
    _write(
        str(tmp_path / "descriptions.csv"),
        'videoid,imdbid,description,duration\nAAA,tt1,"A man opens the door, slowly.",120\n'
        "BBB,tt1,Two friends argue in a car.,90\nCCC,tt2,A dog runs.,30\nDDD,tt2,A storm hits the town.,60\n"
        "FFF,tt4,Not in clips.,10\n",
        bom=True,
    )
    return str(tmp_path / "clips.csv"), str(tmp_path / "descriptions.csv"), str(videos)


def test_condensed_movies(tmp_path):
    clips, descriptions, videos = _cmd(tmp_path)
    out = tmp_path / "videos"  # dataset dir above the videos: relative paths
    summary = convert_condensed_movies(clips, descriptions, videos, str(out))
    rows = _read(out / "cmd_caption_sft.json")
    assert [(r["videos"][0], r["messages"][1]["content"]) for r in rows] == [
        ("2011/AAA.mkv", "A man opens the door, slowly."),
        ("2012/BBB.mp4", "Two friends argue in a car."),
        ("CCC.mkv", "A dog runs."),
        ("2013/DDD.mkv", "A storm hits the town."),
        ("FFF.mkv", "Not in clips."),
    ]
    assert rows[0]["messages"][0]["content"] == "<video>Describe this movie clip."
    assert len(summary.missing_videos) == 2
    assert "1 clips in clips.csv have no description" in summary.notes
    assert "1 descriptions have no row in clips.csv" in summary.notes
    assert "cmd_caption_sft" in _read(out / "dataset_info.json")


def test_condensed_movies_script_skip_missing_and_bad_header(tmp_path, capsys):
    clips, descriptions, videos = _cmd(tmp_path)
    out = tmp_path / "data"
    args = ["--clips", clips, "--descriptions", descriptions, "--video-root", videos, "--output-dir", str(out)]
    assert _script("prepare_condensed_movies").main([*args, "--skip-missing"]) == 0
    assert len(_read(out / "cmd_caption_sft.json")) == 3
    assert "missing videos: 2 (dropped 2 samples" in capsys.readouterr().out
    _write(descriptions, "videoid,text\nAAA,hello\n")
    assert _script("prepare_condensed_movies").main(args) == 1
    assert f"{descriptions}:1: key 'description': no 'description' column" in capsys.readouterr().err
    _write(descriptions, "videoid,description\nAAA,hello\nBBB,\n")
    assert _script("prepare_condensed_movies").main(args) == 1
    assert f"{descriptions}:3: row[1], key 'description': empty description" in capsys.readouterr().err
