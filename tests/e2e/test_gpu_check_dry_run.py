"""scripts/gpu_check.sh --dry-run: every stage's check runs one fp32 step of the tiny model through the stock
llamafactory-cli on CPU, the GPU-only variants and the benchmark are listed as skipped with their reason, and the
table, summary and logs land under --out."""

import json
import os
import subprocess
import sys

import pytest

from .helpers import offline_env

pytestmark = pytest.mark.e2e
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGES = ("action_cls", "scst", "fastslow_ar", "sparc_align")


def test_gpu_check_dry_run_runs_every_stage_and_lists_skipped_gpu_parts(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    proc = subprocess.run(
        [
            "bash",
            os.path.join(ROOT, "scripts", "gpu_check.sh"),
            "--dry-run",
            "--out",
            str(out),
            "--workdir",
            str(work),
        ],
        env=offline_env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=str(tmp_path),
    )
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console[-4000:]

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["dry_run"] is True and summary["failed"] == []
    rows = {(c["stage"], c["variant"]): c for c in summary["checks"]}
    for stage in STAGES:
        row = rows[(stage, "sdpa")]
        assert row["status"] == "ok", row
        assert row["extra"]["steps"] >= 1, row
        assert os.path.isfile(out / "logs" / f"{stage}__sdpa.log")
        assert os.path.isfile(out / "configs" / f"{stage}__sdpa.yaml")
        log_rows = (out / "runs" / f"{stage}__sdpa" / "trainer_log.jsonl").read_text(encoding="utf-8").splitlines()
        assert any(json.loads(line).get("current_steps", 0) >= 1 for line in log_rows)
        assert f"stage: {stage}" in (out / "configs" / f"{stage}__sdpa.yaml").read_text(encoding="utf-8")

    # the GPU-only parts: skipped, each with its reason, in the JSON and in the printed / written table
    gpu_rows = [c for c in summary["checks"] if c["variant"] in ("fa2", "liger", "ds_z3")]
    assert {c["variant"] for c in gpu_rows} == {"fa2", "liger", "ds_z3"}
    assert {c["stage"] for c in gpu_rows if c["variant"] == "ds_z3"} == set(STAGES)
    for row in gpu_rows:
        assert row["status"] == "skipped" and "needs CUDA" in row["detail"], row
    bench = rows[("bench/run.py --only gpu", "full")]
    assert bench["status"] == "skipped" and "needs CUDA" in bench["detail"]
    table = (out / "summary.md").read_text(encoding="utf-8")
    for line in ("| action_cls | fa2 | skipped |", "| sparc_align | ds_z3 | skipped |", "| scst | sdpa | ok |"):
        assert line in table and line in console, line
    assert "every check that ran passed" in console
    # nothing heavy in --out: the runs' checkpoints stay in --workdir and are removed
    assert not (work / "runs" / "action_cls__sdpa").exists()
