import json
import os
import subprocess
import sys


def test_stages_lists_the_registry(capsys):
    from llamafactory_video.cli import main

    assert main(["stages", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    from llamafactory_video.registry import STAGES

    assert [row["stage"] for row in rows] == list(STAGES)
    assert rows[0]["extra_columns"] == ["action_label"]


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "llamafactory-video")
    out = subprocess.run([exe, "stages"], capture_output=True, text=True, check=True, timeout=600).stdout
    assert "action_cls" in out and "Video Action Classification" in out


def test_video_qa_commands_are_registered_and_lazy():
    from llamafactory_video.cli import COMMANDS

    for name in ("add-subtitles", "subtitle-prompt", "transcribe", "long-qa"):
        assert name in COMMANDS and COMMANDS[name][0]
    code = "import sys; from llamafactory_video.cli import COMMANDS; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.stdout.strip() == "False"


def test_long_qa_help_lists_its_options():
    exe = os.path.join(os.path.dirname(sys.executable), "llamafactory-video")
    out = subprocess.run([exe, "long-qa", "--help"], capture_output=True, text=True, check=True, timeout=600).stdout
    for option in ("--clip-seconds", "--overlap", "--top-k", "--embedder", "--index-dir", "--json", "--adapter"):
        assert option in out


def test_add_subtitles_reports_a_missing_dataset(tmp_path, capsys):
    from llamafactory_video.cli import main

    (tmp_path / "dataset_info.json").write_text('{"a": {"file_name": "a.json"}}')
    assert main(["add-subtitles", "--dataset-dir", str(tmp_path), "--dataset", "b"]) == 1
    assert "dataset_info.json: no dataset 'b' (registered: a)" in capsys.readouterr().err


def test_sparc_commands_are_listed_without_importing_them():
    from llamafactory_video.cli import COMMANDS

    assert "score" in COMMANDS and "attention-map" in COMMANDS
    assert "rank candidate captions" in COMMANDS["score"][0]
    assert "token-to-patch" in COMMANDS["attention-map"][0]


def test_score_rejects_missing_files(tmp_path, capsys):
    from llamafactory_video.cli import main

    texts = tmp_path / "t.txt"
    texts.write_text("a red square\n", encoding="utf-8")
    assert main(["score", "--model", str(tmp_path), "--video", str(tmp_path / "nope.mp4"), "--texts", str(texts)]) == 2
    assert "--video" in capsys.readouterr().err
    empty = tmp_path / "e.txt"
    empty.write_text("# only a comment\n\n", encoding="utf-8")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    assert main(["score", "--model", str(tmp_path), "--video", str(video), "--texts", str(empty)]) == 2
    assert "no caption" in capsys.readouterr().err
    assert (
        main(["attention-map", "--model", str(tmp_path), "--video", str(video), "--text", " ", "--output", "x.png"])
        == 2
    )
