"""NExT-QA csv -> sharegpt rows with the right letter as `answer` / reference, for scst's option_accuracy."""

import json
import os

import pytest

from llamafactory_video.rewards.builtin import option_accuracy
from llamafactory_video.tools.convert import ConversionError, convert_nextqa

HEADER = "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4\n"


def _write(tmp_path, body, name="val.csv"):
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return str(path)


def test_convert_nextqa_rows_register_and_score(tmp_path):
    root = tmp_path / "NExTVideo" / "1150"
    root.mkdir(parents=True)
    (root / "6233408665.mp4").write_bytes(b"")
    (tmp_path / "map.json").write_text(json.dumps({"6233408665": "1150/6233408665"}), encoding="utf-8")
    csv_path = _write(
        tmp_path,
        "6233408665,300,640,480,what did the people do after the lady finished singing,3,8,TN,"
        "sitting.,give it to the girl.,take music sheet.,clap.,walk in circles.\n"
        "999,10,64,64,why is the dog wet,0,1,CW,it swam,it rained,bath,sweat,spill\n",
    )
    out = tmp_path / "data"
    summary = convert_nextqa(
        [csv_path], str(tmp_path / "NExTVideo"), str(out), video_map=str(tmp_path / "map.json"), skip_missing=True
    )
    rows = json.loads((out / "nextqa_val.json").read_text(encoding="utf-8"))
    assert summary.outputs == {"nextqa_val.json": 1} and summary.dropped_samples == 1
    row = rows[0]
    assert row["answer"] == "D" and row["references"] == ["D"] and row["category"] == "TN"
    prompt = row["messages"][0]["content"]
    assert prompt.startswith("<video>what did the people do after the lady finished singing?\nA. sitting.")
    assert "\nD. clap.\nE. walk in circles.\nAnswer with the option's letter." in prompt
    assert row["messages"][1]["content"] == "D"
    assert os.path.isabs(row["videos"][0]) and row["videos"][0].endswith("1150/6233408665.mp4")
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["nextqa_val"]["columns"]["answer"] == "answer"
    # the reward the stage trains with reads the converted answer
    assert option_accuracy(["D. clap", "(A)"], [row["references"]] * 2, answer=[row["answer"]] * 2).tolist() == [1, 0]


def test_convert_nextqa_names_the_bad_row(tmp_path):
    csv_path = _write(tmp_path, "1,1,1,1,why,7,1,CW,a,b,c,d,e\n")
    with pytest.raises(ConversionError, match=r"val.csv:2.*'answer'.*answer 7 but 5 options"):
        convert_nextqa([csv_path], str(tmp_path), str(tmp_path / "out"))
