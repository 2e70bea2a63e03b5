"""Smoke test of ``bench/caption_reward.py --quick`` so the benchmark never rots. No timing assertions: only that
it runs end to end, writes JSON with the expected structure, and that our scorer built on the batch agrees with
pycocoevalcap."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("pycocoevalcap")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO_ROOT, "bench", "caption_reward.py")
SUMMARY_KEYS = {"n", "median", "p10", "p90", "min", "max", "stdev", "values"}


def test_caption_reward_bench_quick(tmp_path):
    output = tmp_path / "results" / "caption_reward_test.json"
    proc = subprocess.run(
        [sys.executable, BENCH, "--quick", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "wrote" in proc.stdout and "ratio" in proc.stdout

    results = json.loads(output.read_text())
    assert {"benchmark", "timestamp", "command", "machine", "settings", "setup", "batches"} <= set(results)
    assert results["benchmark"] == "caption_reward" and results["settings"]["quick"] is True
    assert {"scorer_build_s", "vocabulary_size", "distinct_ngrams"} <= set(results["setup"])
    assert set(results["batches"]) == {"8", "32", "128", "512"}
    for row in results["batches"].values():
        for name in ("ours_s", "pycocoevalcap_s", "ours_batch_df_s"):
            assert SUMMARY_KEYS <= set(row[name]) and row[name]["n"] == results["settings"]["reps"]
        assert {
            "ratio_pycocoevalcap_over_ours",
            "ratio_pycocoevalcap_over_ours_batch_df",
            "ours_us_per_candidate",
            "pycocoevalcap_us_per_candidate",
        } <= set(row)
        assert row["max_abs_diff_vs_pycocoevalcap"] < 1e-9
