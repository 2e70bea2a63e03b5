"""Smoke test of the ``fastslow_ar`` benchmark (``bench/fastslow_step.py`` via ``bench/run.py --quick``) so it never
rots. No timing assertions: the run ends, the JSON and the docs section have the expected structure, and the token
figures are exactly what the pooling arithmetic gives for the quick clip (8 frames of 112 px: 4 slots of 4 x 4
merged tokens), so numbers from a wrong code path (no pooling applied, the wrong strides, the mask silently off)
fail it."""

import json
import math
import os
import subprocess
import sys


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = os.path.join(REPO_ROOT, "bench", "run.py")
ROUTES = ["sft", "sft_pool2", "fastslow", "fastslow_nomask"]


def _pooled(side: int, stride: int) -> int:
    return math.ceil(side / stride) ** 2


def test_fastslow_bench_quick(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- results:cpu -->\nstale\n<!-- /results:cpu -->\n")
    env = dict(os.environ)
    env.pop("LLAMAFACTORY_VIDEO_DISABLE", None)
    proc = subprocess.run(
        [
            sys.executable,
            RUN,
            "--quick",
            "--only",
            "fastslow_ar",
            "--device",
            "cpu",
            "--results-dir",
            str(tmp_path / "results"),
            "--docs",
            str(docs),
            "--workdir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    entry = json.loads((tmp_path / "results" / "cpu_quick.json").read_text())["benchmarks"]["fastslow_ar"]
    assert entry["status"] == "ok", entry
    variants, raws = entry["summary"]["variants"], entry["raw"]
    assert [v["config"]["family"] for v in variants] == ["qwen2_5_vl", "qwen3_vl"]  # Qwen3-VL beside Qwen2.5-VL
    for variant, raw in zip(variants, raws):
        cfg = variant["config"]
        assert list(variant["routes"]) == ROUTES

        # the pooling arithmetic, written out: slots = frames / 2, merged side = px / (28 or 32); interleave = S F S F
        px = {"qwen2_5_vl": 28, "qwen3_vl": 32}[cfg["family"]]  # patch 14 or 16, merge 2
        slots, side = cfg["frames"] // 2, cfg["side"] // px
        stock = slots * side * side
        expected = {
            "sft": stock,
            "sft_pool2": slots * _pooled(side, 2),
            "fastslow": math.ceil(slots / 2) * _pooled(side, 2) + slots // 2 * _pooled(side, 4),
        }
        expected["fastslow_nomask"] = expected["fastslow"]
        assert (stock, expected["sft_pool2"], expected["fastslow"]) == (64, 16, 10)  # the quick clip
        routes = variant["routes"]
        for route in ROUTES:
            assert routes[route]["video_tokens_per_video"] == expected[route], route
            # the text is the same on every route: only the video tokens differ
            assert routes["sft"]["tokens_per_sample"] - routes[route]["tokens_per_sample"] == stock - expected[route]
            assert (
                routes[route]["sequence_length"] % 8 == 0
                and routes[route]["sequence_length"] >= (routes[route]["tokens_per_sample"])
            )
            assert routes[route]["step_ms"]["median"] > 0 and routes[route]["step_cpu_ms"]["median"] > 0
            assert routes[route]["peak_memory_mb"] is None  # not measured in a quick run
            assert math.isfinite(raw["final_loss"][route])
            assert raw["routes"][route]["video_grid_thw"] == [slots, cfg["side"] * 2 // px, cfg["side"] * 2 // px]
        assert [raw["routes"][r]["block_mask"] for r in ROUTES] == [False, False, True, False]
        assert [raw["routes"][r]["stage"] for r in ROUTES] == ["sft", "sft", "fastslow_ar", "fastslow_ar"]
        # the fastslow head adds trainable parameters; the pooled sft route trains the same weights as stock sft
        assert raw["routes"]["sft_pool2"]["trainable_parameters"] == raw["routes"]["sft"]["trainable_parameters"]
        assert raw["routes"]["fastslow"]["trainable_parameters"] > raw["routes"]["sft"]["trainable_parameters"]
        ratios = variant["ratio_sft_over_route"]
        assert set(ratios) == set(ROUTES[1:])
        for route in ROUTES[1:]:
            assert ratios[route]["video_tokens"] == stock / expected[route]
            assert ratios[route]["step_time"] > 0 and ratios[route]["step_cpu_time"] > 0
            assert ratios[route]["peak_memory"] is None
            assert ratios[route]["tokens_per_sample"] == (
                routes["sft"]["tokens_per_sample"] / routes[route]["tokens_per_sample"]
            )

    section = docs.read_text().split("<!-- results:cpu -->")[1].split("<!-- /results:cpu -->")[0]
    assert "`fastslow_ar` training step" in section and "stale" not in section
    assert "| ×4.00 |" in section and "| ×6.40 |" in section
