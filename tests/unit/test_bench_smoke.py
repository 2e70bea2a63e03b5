"""Smoke test of ``bench/startup.py`` so the benchmark never rots. No timing assertions: only that it
runs end to end and writes JSON with the expected structure."""

import json
import os
import subprocess
import sys


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO_ROOT, "bench", "startup.py")
SUMMARY_KEYS = {"n", "median", "p10", "p90", "min", "max", "stdev", "values"}


def _check_summary(summary, n=None):
    assert SUMMARY_KEYS <= set(summary), summary.keys()
    assert len(summary["values"]) == summary["n"]
    if n is not None:
        assert summary["n"] == n


def test_startup_bench_quick(tmp_path):
    output = tmp_path / "results" / "startup_test.json"
    env = dict(os.environ)
    env.pop("LLAMAFACTORY_VIDEO_DISABLE", None)
    proc = subprocess.run(
        [sys.executable, BENCH, "--quick", "--runs", "3", "--output", str(output)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "wrote" in proc.stdout

    results = json.loads(output.read_text())
    assert {"benchmark", "timestamp", "machine", "settings", "hook", "import_constants", "cli_help"} <= set(results)
    assert {"platform", "cpu_count", "python_version", "device"} <= set(results["machine"])
    assert results["machine"]["device"] in ("cpu", "cuda")
    assert results["settings"]["runs"] == 3 and results["settings"]["heavy_rounds_done"] == 1

    for mode in ("env", "cached"):
        block = results["hook"][mode]
        for key in (
            "bootstrap_cumulative_ms",
            "package_init_cumulative_ms",
            "site_cumulative_ms",
            "python_c_pass_wall_ms",
        ):
            _check_summary(block[key], n=3)

    for key in ("import_constants", "cli_help"):
        block = results[key]
        assert block is not None, f"{key} skipped"
        assert {
            "command",
            "with_plugin_ms",
            "without_plugin_ms",
            "ratio_median",
            "delta_median_ms",
            "pair_ratios",
        } <= set(block)
        _check_summary(block["with_plugin_ms"], n=1)
        _check_summary(block["without_plugin_ms"], n=1)
        assert len(block["pair_ratios"]) == 1
    _check_summary(results["import_constants"]["plugin_modules_self_ms"], n=1)


def test_action_cls_step_bench_quick(tmp_path):
    output = tmp_path / "step.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO_ROOT, "bench", "action_cls_step.py"),
            "--quick",
            "--output",
            str(output),
            "--workdir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    results = json.loads(output.read_text())
    assert set(results["step_time_s"]) == set(results["peak_memory_mb"]) == {"ours", "seed", "sft"}
    assert results["tokens"]["ours"] < results["tokens"]["seed"]  # the prompt ends at <ACTION>
    assert results["tokens"]["sft"] == results["tokens"]["seed"]  # the stock sft step sees the same batch
    assert {"step_time", "peak_memory"} == set(results["ratio_seed_over_ours"]) == set(results["ratio_sft_over_ours"])
