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
