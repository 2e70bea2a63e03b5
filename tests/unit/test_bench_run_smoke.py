"""Smoke tests of the benchmark suite ``bench/run.py`` so it never rots. No timing assertions: only that the suite
runs end to end on a cheap subset, writes the aggregated JSON with the expected structure into a temporary results
directory, rewrites only its marked section of a docs file, and that the real-size GPU configs have the published
parameter counts (checked on the meta device, no memory, no GPU)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH_DIR = os.path.join(REPO_ROOT, "bench")
RUN = os.path.join(BENCH_DIR, "run.py")
# no other smoke test runs these (fastslow_ar: tests/unit/test_fastslow_bench_smoke.py); suite order
SUBSET = ("scst_step", "decode", "gpu", "sparc_align")
HAND_WRITTEN = "Hand-written text outside the markers stays.\n"


def _bench_module(name: str):
    """``bench/<name>.py`` imported under a private name (its sibling imports need ``bench/`` on the path)."""
    if BENCH_DIR not in sys.path:
        sys.path.append(BENCH_DIR)
    key = f"_lfv_bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(BENCH_DIR, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def _run(args: list[str], cwd) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("LLAMAFACTORY_VIDEO_DISABLE", None)
    return subprocess.run(
        [sys.executable, RUN, *args], capture_output=True, text=True, timeout=900, check=False, env=env, cwd=str(cwd)
    )


def test_run_quick_subset(tmp_path):
    results_dir, docs = tmp_path / "results", tmp_path / "benchmarks.md"
    docs.write_text(
        f"# Benchmarks\n\n{HAND_WRITTEN}\n<!-- results:cpu -->\nstale table\n<!-- /results:cpu -->\n"
        "\nAfter the markers.\n"
    )
    common = [
        "--device",
        "cpu",
        "--results-dir",
        str(results_dir),
        "--docs",
        str(docs),
        "--workdir",
        str(tmp_path / "cache"),
    ]
    proc = _run(["--quick", "--only", ",".join(reversed(SUBSET)), *common], tmp_path)  # run in suite order anyway
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    for index, name in enumerate(SUBSET, 1):
        assert f"[{index}/{len(SUBSET)}] {name} ..." in proc.stdout  # progress per benchmark

    path = results_dir / "cpu_quick.json"  # a quick run never writes <device>.json
    assert path.is_file() and not (results_dir / "cpu.json").exists()
    results = json.loads(path.read_text())
    assert {
        "suite",
        "device",
        "quick",
        "timestamp",
        "command",
        "machine",
        "loadavg_start",
        "loadavg_end",
        "wall_s",
        "benchmarks",
    } <= set(results)
    assert results["device"] == "cpu" and results["quick"] is True
    assert {"platform", "cpu_count", "python", "torch", "device", "device_name"} <= set(results["machine"])
    assert list(results["benchmarks"]) == list(SUBSET)
    for name in SUBSET:
        entry = results["benchmarks"][name]
        assert {"status", "wall_s", "timestamp"} <= set(entry), entry
    sparc = results["benchmarks"]["sparc_align"]
    assert sparc["status"] == "ok"
    for row in sparc["summary"]["sizes"].values():
        assert row["ratio_naive_over_vectorised"] > 0 and row["max_abs_diff"] < 1e-3

    decode = results["benchmarks"]["decode"]
    assert decode["status"] == "ok" and decode["summary"]["frame_sampler_ours"] == "built"
    assert any(label.startswith("synthetic:") for label in decode["summary"]["videos"])
    for row in decode["summary"]["videos"].values():
        for side in ("host_qwen2vl", "ours", "ours_cache", "pyav_decode", "pyav_rgb"):
            assert row["sides"][side]["status"] == "ok"
            assert {"median", "p10", "p90"} == set(row["sides"][side]["seconds"])
        assert row["sides"]["ours"]["frames_returned"] == row["sides"]["host_qwen2vl"]["frames_returned"]
        assert row["sides"]["ours_cache"]["frames_returned"] == row["sides"]["host_qwen2vl"]["frames_returned"]
        assert row["sides"]["decord"]["status"] in ("ok", "unavailable")
        assert row["ratio_host_over_ours"] > 0 and row["ratio_host_over_ours_cache"] > 0
        ceiling = row["ceiling"]
        assert ceiling["ceiling_ratio"] >= 1 and ceiling["frames_from_keyframes"] <= row["video"]["frames"]

    gpu = results["benchmarks"]["gpu"]
    assert gpu["status"] == "ok" and gpu["summary"]["code_path_check_only"] is True
    tiny = [v for v in gpu["summary"]["variants"] if v["status"] == "ok"]
    assert tiny and tiny[0]["model"] == "tiny" and tiny[0]["attn"] == "sdpa"
    assert set(tiny[0]["routes"]) == {"action_cls", "sft"}
    for block in tiny[0]["routes"].values():
        assert block["status"] == "ok" and block["tokens"] > 0 and block["tokens_per_s"] > 0
        assert block["mfu"] is None  # no known peak for a CPU
    assert tiny[0]["scst_status"] == "ok" and tiny[0]["scst_samples_per_s"] > 0
    assert tiny[0]["routes"]["action_cls"]["tokens"] < tiny[0]["routes"]["sft"]["tokens"]

    scst = results["benchmarks"]["scst_step"]
    assert scst["status"] == "ok"
    (variant,) = scst["summary"]["variants"]
    assert {"generate_samples", "generate_baseline", "reward", "forward_backward", "step"} == set(variant["phases_ms"])
    assert variant["bottleneck"] in variant["share_of_step"]
    assert abs(sum(variant["share_of_step"].values()) - 1.0) < 1e-6
    assert variant["samples_per_s"] > 0

    text = docs.read_text()
    assert HAND_WRITTEN in text and "After the markers." in text and "stale table" not in text
    section = text.split("<!-- results:cpu -->")[1].split("<!-- /results:cpu -->")[0]
    assert "Video decoding" in section and "Not built yet" not in section
    assert "SPARC local loss" in section

    # --only on an existing file keeps the other benchmarks' entries
    proc = _run(["--quick", "--only", "sparc_align", *common], tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    merged = json.loads(path.read_text())
    assert list(merged["benchmarks"]) == list(SUBSET)
    assert merged["benchmarks"]["decode"] == results["benchmarks"]["decode"]


def test_every_stage_has_a_benchmark():
    from llamafactory_video.registry import STAGES

    run = _bench_module("run")
    for stage in STAGES:  # action_cls_step, scst_step, sparc_align, fastslow_ar
        assert any(name.startswith(stage) for name in run.BENCHMARKS), stage
    assert run.BENCHMARKS["fastslow_ar"] is run.bench_fastslow_ar
    assert run.BENCHMARKS["sparc_align"] is run.bench_sparc_align
    assert set(run.FASTSLOW_SIZES) == {"cpu", "cuda"}


def test_run_rejects_unknown_benchmark(tmp_path):
    proc = _run(["--quick", "--only", "no_such_bench", "--results-dir", str(tmp_path)], tmp_path)
    assert proc.returncode != 0 and "unknown benchmark" in proc.stderr
    assert not any(tmp_path.iterdir())


def test_update_docs_markers(tmp_path):
    run = _bench_module("run")
    docs = tmp_path / "b.md"
    run.update_docs(str(docs), "cpu", "first\n")  # created, with a section and markers
    run.update_docs(str(docs), "cuda", "gpu table\n")  # appended, the cpu section untouched
    run.update_docs(str(docs), "cpu", "second\n")  # replaced in place
    text = docs.read_text()
    assert text.count("<!-- results:cpu -->") == text.count("<!-- /results:cpu -->") == 1
    assert "second" in text and "first" not in text and "gpu table" in text
    assert text.index("results:cpu") < text.index("results:cuda")


@pytest.mark.parametrize("model, total_b, tied", [("3b", 3.755, True), ("7b", 8.292, False)])
def test_gpu_real_size_configs(model, total_b, tied):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForImageTextToText

    gpu = _bench_module("gpu")
    size = gpu.MODEL_SIZES[model]
    with torch.device("meta"):
        net = AutoModelForImageTextToText.from_config(gpu.make_config(size), dtype=torch.bfloat16)
    groups = gpu.parameter_groups(net)
    assert abs(groups["total"] / 1e9 - total_b) < 0.01, groups  # the published Qwen2.5-VL-3B / 7B sizes
    assert (groups["lm_head"] == 0) is tied
    text = net.config.text_config
    assert (
        text.hidden_size,
        text.num_hidden_layers,
        text.num_attention_heads,
        text.num_key_value_heads,
        text.intermediate_size,
        text.vocab_size,
    ) == (size["hidden"], size["layers"], size["heads"], size["kv_heads"], size["intermediate"], 151936)
    assert (
        net.config.vision_config.depth,
        net.config.vision_config.hidden_size,
        net.config.vision_config.out_hidden_size,
    ) == (32, 1280, size["hidden"])

    batch = gpu.video_batch(2, 16, 336, "sft", "cpu", torch.float32)
    grid = batch["video_grid_thw"]
    assert int((batch["input_ids"] == gpu.VIDEO_PAD).sum()) == int(grid.prod(-1).sum()) // 4
    assert batch["pixel_values_videos"].shape == (int(grid.prod(-1).sum()), 3 * 2 * 14 * 14)
    assert int((batch["labels"] != -100).sum()) == 2 * (gpu.ANSWER_TOKENS + 1)
    flops = gpu.model_flops(
        groups, int(batch["input_ids"].numel()), int(batch["input_ids"].numel()), int(grid.prod(-1).sum()), tied
    )
    assert flops["simple"] == 6.0 * flops["params_counted"] * batch["input_ids"].numel()


def test_peak_table():
    gpu = _bench_module("gpu")
    assert gpu.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
    assert gpu.peak_tflops("NVIDIA H200", None) == 989.0
    assert gpu.peak_tflops("NVIDIA H100 PCIe", None) == 756.0
    assert gpu.peak_tflops("AMD EPYC", None) is None
    assert gpu.peak_tflops("anything", 123.0) == 123.0
