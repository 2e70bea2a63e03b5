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
    out = subprocess.run([exe, "stages"], capture_output=True, text=True, check=True).stdout
    assert "action_cls" in out and "Video Action Classification" in out


def test_video_qa_commands_are_registered_and_lazy():
    from llamafactory_video.cli import COMMANDS

    for name in ("add-subtitles", "subtitle-prompt", "transcribe", "long-qa"):
        assert name in COMMANDS and COMMANDS[name][0]
    code = "import sys; from llamafactory_video.cli import COMMANDS; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_long_qa_help_lists_its_options():
    exe = os.path.join(os.path.dirname(sys.executable), "llamafactory-video")
    out = subprocess.run([exe, "long-qa", "--help"], capture_output=True, text=True, check=True).stdout
    for option in ("--clip-seconds", "--overlap", "--top-k", "--embedder", "--index-dir", "--json", "--adapter"):
        assert option in out


def test_add_subtitles_reports_a_missing_dataset(tmp_path, capsys):
    from llamafactory_video.cli import main

    (tmp_path / "dataset_info.json").write_text('{"a": {"file_name": "a.json"}}')
    assert main(["add-subtitles", "--dataset-dir", str(tmp_path), "--dataset", "b"]) == 1
    assert "dataset_info.json: no dataset 'b' (registered: a)" in capsys.readouterr().err
