#!/usr/bin/env python
"""Benchmark suite: every stage measured against stock LlamaFactory and its peers, on CPU or GPU.

Each benchmark is a module-level ``bench_<name>`` function below that runs one of the stand-alone scripts in
``bench/`` (each still runnable on its own, see its docstring) as a subprocess, once per configuration, and
condenses its JSON. The scripts do the warm-up, the repetitions and the pairing (both sides of a comparison in the
same process, alternating or rotating run by run) and report medians and spreads.

Writes ``<results-dir>/<device>.json`` (``<device>_quick.json`` with ``--quick``: a smoke run never overwrites the
committed figures): the machine, the time, per benchmark its status, condensed medians / spreads / ratios
(``summary``) and the scripts' full output (``raw``). With ``--only`` the other benchmarks' entries of an existing
file are kept. A full run also rewrites the generated section of ``docs/benchmarks.md`` between
``<!-- results:<device> -->`` and ``<!-- /results:<device> -->`` (a quick run only when ``--docs`` is given).
Exit status 1 when a benchmark failed. No timing assertions anywhere.

    python bench/run.py [--quick] [--only NAME[,NAME]] [--device cpu|cuda] [--results-dir DIR] [--docs FILE]
                        [--peak-tflops X] [--list]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable


HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_RESULTS_DIR = os.path.join(HERE, "results")
DEFAULT_DOCS = os.path.join(REPO, "docs", "benchmarks.md")
#: model sizes of the CPU training-step benchmarks, (hidden, layers), at the realistic 151,936-token vocabulary
ACTION_CLS_SIZES = ((64, 2), (256, 4), (512, 4))
SCST_SIZES = ((64, 2), (256, 4))
#: sizes of the fastslow_ar step benchmark on CPU and on a GPU (2 videos x 16 frames of 224 px either way)
FASTSLOW_SIZES = {"cpu": ((64, 2), (256, 4)), "cuda": ((256, 4), (1024, 8))}
#: families of the fastslow_ar step benchmark, each beside the others at every size
FASTSLOW_FAMILIES = {"qwen2_5_vl": "Qwen2.5-VL", "qwen3_vl": "Qwen3-VL"}


@dataclass
class Context:
    """What every benchmark function gets."""

    quick: bool
    device: str
    tmp: str
    workdir: str
    peak_tflops: float | None
    timeout_s: float


# ------------------------------------------------------------------------------------------------ helpers
def run_script(ctx: Context, script: str, args: list[str], tag: str) -> dict[str, Any]:
    """Run ``bench/<script>`` with ``args`` + ``--output <tmp>/<tag>.json``, echoing its output; its JSON."""
    output = os.path.join(ctx.tmp, f"{tag}.json")
    cmd = [sys.executable, os.path.join(HERE, script), *args, "--output", output]
    print(f"  $ {' '.join(os.path.basename(c) if i < 2 else c for i, c in enumerate(cmd))}", flush=True)
    env = dict(os.environ)
    for key, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_DATASETS_OFFLINE", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
        ("DISABLE_VERSION_CHECK", "1"),
    ):
        env.setdefault(key, value)
    tail: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO) as proc:
        fired = threading.Event()

        def stop() -> None:  # this child only, by its handle
            fired.set()
            proc.kill()

        watchdog = threading.Timer(ctx.timeout_s, stop)
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail = (tail + [line.rstrip()])[-60:]
                print(f"  | {line.rstrip()}", flush=True)
            code = proc.wait()
        finally:
            watchdog.cancel()
    if fired.is_set():
        raise TimeoutError(f"{script} ran past {ctx.timeout_s} s and was stopped")
    if code != 0 or not os.path.isfile(output):
        raise RuntimeError(f"{script} exited with {code}:\n" + "\n".join(tail[-30:]))
    with open(output, encoding="utf-8") as f:
        return json.load(f)


def stat(summary: dict[str, Any], scale: float = 1.0) -> dict[str, float]:
    """``{median, p10, p90}`` of a summary (``min`` / ``max`` when it has no percentiles), times ``scale``."""
    lo = summary.get("p10", summary.get("min"))
    hi = summary.get("p90", summary.get("max"))
    return {"median": summary["median"] * scale, "p10": lo * scale, "p90": hi * scale}


def machine_info(device: str) -> dict[str, Any]:
    """Platform, CPU, Python, library versions and the device name (via ``nvidia-smi``: no CUDA init here)."""
    cpu_name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            cpu_name = match.group(1).strip() if match else cpu_name
    except OSError:
        pass
    versions = {}
    for package in ("torch", "transformers", "llamafactory", "av", "peft"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": versions["torch"],
        "versions": versions,
        "device": device,
        "device_name": cpu_name,
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
        if hasattr(os, "sysconf")
        else None,
    }
    smi = shutil.which("nvidia-smi")
    if device == "cuda" and smi:
        proc = subprocess.run(
            [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0 and proc.stdout.strip():
            name, memory, driver = [p.strip() for p in proc.stdout.strip().splitlines()[0].split(",")]
            info.update(device_name=name, gpu_memory=memory, gpu_driver=driver)
    return info


def _size_tag(size: tuple[int, int] | None) -> str:
    return "quick" if size is None else f"h{size[0]}_l{size[1]}"


def loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where unsupported)."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


# ------------------------------------------------------------------------------------------------ benchmarks
def bench_startup(ctx: Context) -> dict[str, Any]:
    """Start-up cost of the plugin's hook per process; ``llamafactory-cli`` / host import with and without it."""
    raw = run_script(ctx, "startup.py", ["--quick"] if ctx.quick else [], "startup")
    summary: dict[str, Any] = {
        "hook_ms": {mode: stat(raw["hook"][mode]["bootstrap_cumulative_ms"]) for mode in ("env", "cached")},
        "python_c_pass_ms": stat(raw["hook"]["cached"]["python_c_pass_wall_ms"]),
    }
    for key in ("import_constants", "cli_help"):
        block = raw.get(key)
        if block:
            summary[key] = {
                "with_ms": stat(block["with_plugin_ms"]),
                "without_ms": stat(block["without_plugin_ms"]),
                "ratio_with_over_without": block["ratio_median"],
                "delta_ms": block["delta_median_ms"],
                "pairs": len(block["pair_ratios"]),
                "pair_ratios": block["pair_ratios"],
            }
    if raw.get("import_constants", {}).get("plugin_modules_self_ms"):
        summary["plugin_modules_self_ms"] = stat(raw["import_constants"]["plugin_modules_self_ms"])
    return {"summary": summary, "raw": raw}


def bench_action_cls_step(ctx: Context) -> dict[str, Any]:
    """``action_cls`` step: our head route vs the seed's ``output_hidden_states`` route vs a stock ``sft`` step."""
    sizes = [None] if ctx.quick else ACTION_CLS_SIZES
    variants = []
    for size in sizes:
        args = ["--device", ctx.device, "--workdir", ctx.workdir]
        args += ["--quick"] if size is None else ["--hidden", str(size[0]), "--layers", str(size[1])]
        raw = run_script(ctx, "action_cls_step.py", args, f"action_cls_step_{_size_tag(size)}")
        cfg = raw["config"]
        variants.append(
            {
                "label": f"h{cfg['hidden']} l{cfg['layers']} v{cfg['vocab']} b{cfg['batch']}",
                "config": cfg,
                "tokens": raw["tokens"],
                "step_time_ms": {route: stat(v, 1000.0) for route, v in raw["step_time_s"].items()},
                "peak_memory_mb": raw["peak_memory_mb"],
                "ratio_seed_over_ours": raw["ratio_seed_over_ours"],
                "ratio_sft_over_ours": raw["ratio_sft_over_ours"],
                "raw": raw,
            }
        )
    return {
        "summary": {"variants": [{k: v for k, v in x.items() if k != "raw"} for x in variants]},
        "raw": [x["raw"] for x in variants],
    }


def bench_caption_reward(ctx: Context) -> dict[str, Any]:
    """CIDEr-D reward: our scorer (cached df) vs pycocoevalcap on the same batches, batch sizes 8 to 512."""
    raw = run_script(ctx, "caption_reward.py", ["--quick"] if ctx.quick else [], "caption_reward")
    batches = {}
    for size, row in raw["batches"].items():
        batches[size] = {
            "ours_ms": stat(row["ours_s"], 1000.0),
            "pycocoevalcap_ms": stat(row["pycocoevalcap_s"], 1000.0),
            "ours_batch_df_ms": stat(row["ours_batch_df_s"], 1000.0),
            "ratio_pycocoevalcap_over_ours": row["ratio_pycocoevalcap_over_ours"],
            "ratio_pycocoevalcap_over_ours_batch_df": row["ratio_pycocoevalcap_over_ours_batch_df"],
            "max_abs_diff_vs_pycocoevalcap": row["max_abs_diff_vs_pycocoevalcap"],
            "reps": row["ours_s"]["n"],
        }
    return {
        "summary": {
            "scorer_build_s": raw["setup"]["scorer_build_s"],
            "videos": raw["settings"]["videos"],
            "refs_per_video": raw["settings"]["refs_per_video"],
            "batches": batches,
        },
        "raw": raw,
    }


def bench_scst_step(ctx: Context) -> dict[str, Any]:
    """``scst`` step broken into generation, reward and forward + backward."""
    sizes = [None] if ctx.quick else SCST_SIZES
    variants, raws = [], []
    for size in sizes:
        args = ["--device", ctx.device, "--workdir", ctx.workdir]
        args += ["--quick"] if size is None else ["--hidden", str(size[0]), "--layers", str(size[1])]
        raw = run_script(ctx, "scst_step.py", args, f"scst_step_{_size_tag(size)}")
        cfg = raw["config"]
        variants.append(
            {
                "label": f"h{cfg['hidden']} l{cfg['layers']} v{cfg['vocab']} B{cfg['batch']}xK{cfg['samples']}",
                "config": cfg,
                "tokens": raw["tokens"],
                "phases_ms": {name: stat(v, 1000.0) for name, v in raw["phases_s"].items()},
                "share_of_step": raw["share_of_step"],
                "bottleneck": raw["bottleneck"],
                "samples_per_s": raw["samples_per_s"],
                "reward_realistic_ms": stat(raw["reward_realistic_s"], 1000.0),
            }
        )
        raws.append(raw)
    return {"summary": {"variants": variants}, "raw": raws}


def bench_decode(ctx: Context) -> dict[str, Any]:
    """Stock video path (Qwen2-VL plugin, PyAV, every frame) vs our frame sampler and our frame cache."""
    raw = run_script(ctx, "decode.py", ["--workdir", ctx.workdir] + (["--quick"] if ctx.quick else []), "decode")
    return summarize_decode(raw)


def summarize_decode(raw: dict[str, Any]) -> dict[str, Any]:
    """``bench_decode``'s entry from ``bench/decode.py``'s JSON (also for a run of the script on its own)."""
    videos = {}
    for label, row in raw["videos"].items():
        sides = {}
        for side, block in row["sides"].items():
            if block["status"] != "ok":
                sides[side] = {"status": block["status"]}
                continue
            sides[side] = {
                "status": "ok",
                "seconds": stat(block["seconds"]),
                "source_fps": block["source_fps"],
                "frames_returned": block["frames_returned"],
                "reps": block["seconds"]["n"],
            }
        videos[label] = {
            "video": row["video"],
            "sides": sides,
            "ceiling": {k: v for k, v in row["ceiling"].items() if k != "ours_stats"},
            **{k: v for k, v in row.items() if k.startswith("ratio_")},
        }
    return {
        "summary": {
            "videos": videos,
            "frame_sampler_ours": raw["frame_sampler_ours"],
            "host_kwargs": raw["settings"]["host_kwargs"],
        },
        "raw": raw,
    }


def bench_gpu(ctx: Context) -> dict[str, Any]:
    """Real-size Qwen2.5-VL 3B/7B: tokens/s, MFU, peak memory, scst samples/s (CPU: the tiny code-path check)."""
    args = ["--device", ctx.device]
    if ctx.quick or ctx.device == "cpu":
        args.append("--quick")
    if ctx.peak_tflops:
        args += ["--peak-tflops", str(ctx.peak_tflops)]
    raw = run_script(ctx, "gpu.py", args, "gpu")
    rows = []
    for variant in raw["variants"]:
        base = {
            "model": variant["model"],
            "attn": variant["attn"],
            "liger": variant["liger"],
            "status": variant.get("status", "ok"),
        }
        if base["status"] != "ok":
            rows.append(dict(base, reason=variant.get("reason") or variant.get("error", "")[-300:]))
            continue
        routes = {}
        for route, block in variant["routes"].items():
            if block["status"] != "ok":
                routes[route] = {"status": block["status"]}
                continue
            routes[route] = {
                "status": "ok",
                "tokens": block["tokens"],
                "step_ms": stat(block["step_s"], 1000.0),
                "tokens_per_s": block["tokens_per_s"],
                "videos_per_s": block["videos_per_s"],
                "mfu": block["mfu"],
                "mfu_detailed": block["mfu_detailed"],
                "peak_allocated_gib": block["peak_allocated_gib"],
            }
        scst = variant.get("scst") or {}
        rows.append(
            dict(
                base,
                routes=routes,
                parameters_b=variant["parameters"]["total"] / 1e9,
                scst_samples_per_s=scst.get("samples_per_s"),
                scst_bottleneck=scst.get("bottleneck"),
                scst_status=scst.get("status"),
            )
        )
    return {
        "summary": {
            "device_name": raw["device_name"],
            "peak_bf16_tflops": raw["peak_bf16_tflops"],
            "code_path_check_only": ctx.device == "cpu",
            "variants": rows,
        },
        "raw": raw,
    }


def bench_fastslow_ar(ctx: Context) -> dict[str, Any]:
    """``fastslow_ar`` and ``sft`` + ``video_token_pool_stride: 2`` steps vs stock ``sft``: tokens, time, memory."""
    sizes = [None] if ctx.quick else FASTSLOW_SIZES[ctx.device]
    variants, raws = [], []
    for size, family in [(size, family) for size in sizes for family in FASTSLOW_FAMILIES]:
        args = ["--device", ctx.device, "--workdir", ctx.workdir, "--family", family]
        args += ["--quick"] if size is None else ["--hidden", str(size[0]), "--layers", str(size[1])]
        if size is not None and family == "qwen3_vl":
            args += ["--side", "256"]  # 8 x 8 merged tokens of 32 px, as 224 px gives on Qwen2.5-VL
        raw = run_script(ctx, "fastslow_step.py", args, f"fastslow_step_{family}_{_size_tag(size)}")
        cfg = raw["config"]
        variants.append(
            {
                "label": f"{FASTSLOW_FAMILIES[family]} h{cfg['hidden']} l{cfg['layers']} v{cfg['vocab']} "
                f"B{cfg['batch']}x{cfg['frames']}f {cfg['side']}px",
                "family": family,
                "config": cfg,
                "routes": {
                    route: {
                        "pooling": info["pooling"],
                        "block_mask": info["block_mask"],
                        "video_tokens_per_video": info["video_tokens_per_video"],
                        "tokens_per_sample": info["tokens_per_sample"],
                        "sequence_length": info["sequence_length"],
                        "step_ms": stat(raw["step_time_s"][route], 1000.0),
                        "step_cpu_ms": stat(raw["step_cpu_time_s"][route], 1000.0),
                        "peak_memory_mb": raw["peak_memory_mb"][route],
                    }
                    for route, info in raw["routes"].items()
                },
                "ratio_sft_over_route": raw["ratio_sft_over_route"],
            }
        )
        raws.append(raw)
    return {"summary": {"variants": variants}, "raw": raws}


def bench_sparc_align(ctx: Context) -> dict[str, Any]:
    """``sparc_align``: the vectorised SPARC local loss vs a naive per-sample loop (forward + backward)."""
    raw = run_script(ctx, "sparc_loss.py", ["--quick"] if ctx.quick else [], "sparc_loss")
    sizes = {
        label: {
            "vectorised_ms": stat(row["vectorised_s"], 1000.0),
            "naive_ms": stat(row["naive_s"], 1000.0),
            "ratio_naive_over_vectorised": row["ratio_naive_over_vectorised"],
            "max_abs_diff": row["max_abs_diff"],
        }
        for label, row in raw["sizes"].items()
    }
    return {"summary": {"sizes": sizes}, "raw": raw}


BENCHMARKS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "startup": bench_startup,
    "action_cls_step": bench_action_cls_step,
    "caption_reward": bench_caption_reward,
    "scst_step": bench_scst_step,
    "decode": bench_decode,
    "gpu": bench_gpu,
    "sparc_align": bench_sparc_align,
    "fastslow_ar": bench_fastslow_ar,
}


# ------------------------------------------------------------------------------------------------ markdown
def _ms(block: dict[str, float] | None, digits: int = 1) -> str:
    if not block:
        return "—"
    return f"{block['median']:.{digits}f} [{block['p10']:.{digits}f}–{block['p90']:.{digits}f}]"


def _x(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"×{value:.{digits}f}"


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _phase(variant: dict[str, Any], name: str) -> str:
    """``median [p10–p90] (share of the step)`` of one scst phase."""
    if name not in variant["phases_ms"]:
        return "—"
    return f"{_ms(variant['phases_ms'][name])} ({variant['share_of_step'][name] * 100:.0f} %)"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %"


def render_markdown(results: dict[str, Any]) -> str:
    """The generated section of ``docs/benchmarks.md`` for one device."""
    m = results["machine"]
    lines = [
        f"_Generated by `python bench/run.py --device {results['device']}{' --quick' if results['quick'] else ''}`"
        f" ({'quick smoke run: figures not meaningful' if results['quick'] else 'full run'}), "
        f"last benchmark finished {results['timestamp']}. Machine: {m['platform']}; {m['device_name']}, "
        f"{m['cpu_count']} CPUs, {m.get('memory_gib')} GiB; Python {m['python']}, torch {m['torch']}, "
        f"transformers {m['versions'].get('transformers')}, llamafactory {m['versions'].get('llamafactory')}. "
        f"Load average (1 min) {(results.get('loadavg_start') or ['?'])[0]} at start, "
        f"{(results.get('loadavg_end') or ['?'])[0]} at end{'; ' + results['note'] if results.get('note') else ''}._",
        "",
        "Cells: median [p10–p90]. Ratios: peer / ours (higher = ours cheaper) unless stated.",
        "",
    ]
    entries = results["benchmarks"]

    def head(name: str, title: str) -> dict[str, Any] | None:
        entry = entries.get(name)
        if entry is None:
            return None
        lines.append(f"#### {title}")
        lines.append("")
        if entry["status"] != "ok":
            lines.extend([f"{entry['status']}: {entry.get('reason') or entry.get('error', '')[-300:]}", ""])
            return None
        return entry["summary"]

    s = head("startup", "Start-up (`bench/startup.py`)")
    if s:
        lines += [
            "| measure | with plugin (ms) | `LLAMAFACTORY_VIDEO_DISABLE=1` (ms) | with / without |",
            "|---|---|---|---|",
            f"| hook import per Python process, bytecode cached | {_ms(s['hook_ms']['cached'], 2)} | — | — |",
            f"| hook import per Python process, environment as is | {_ms(s['hook_ms']['env'], 2)} | — | — |",
        ]
        if "plugin_modules_self_ms" in s:
            lines.append(
                "| plugin modules' own import time once LlamaFactory loads (`-X importtime` self time) | "
                f"{_ms(s['plugin_modules_self_ms'], 2)} | — | — |"
            )
        for key, title in (
            ("import_constants", "`import llamafactory.extras.constants`"),
            ("cli_help", "`llamafactory-cli help`"),
        ):
            if key in s:
                b = s[key]
                ratios = ", ".join(f"{r:.2f}" for r in b.get("pair_ratios", []))
                lines.append(
                    f"| {title}, wall, {b['pairs']} pair(s) | {_ms(b['with_ms'], 0)} | "
                    f"{_ms(b['without_ms'], 0)} | {_x(b['ratio_with_over_without'], 3)} "
                    f"({b['delta_ms']:+.0f} ms; per pair {ratios}) |"
                )
        lines.append("")

    s = head("action_cls_step", "`action_cls` training step (`bench/action_cls_step.py`, forward + backward)")
    if s:
        lines += [
            (
                "| config | tokens ours / seed / sft | ours (ms) | seed (ms) | sft (ms) | seed / ours | "
                "sft / ours | peak MiB ours / seed / sft | seed / ours mem | sft / ours mem |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for v in s["variants"]:
            t, mem = v["step_time_ms"], v["peak_memory_mb"]
            lines.append(
                f"| {v['label']} | {v['tokens']['ours']} / {v['tokens']['seed']} / {v['tokens']['sft']} | "
                f"{_ms(t['ours'])} | {_ms(t['seed'])} | {_ms(t['sft'])} | "
                f"{_x(v['ratio_seed_over_ours']['step_time'])} | {_x(v['ratio_sft_over_ours']['step_time'])} | "
                f"{mem['ours']:.0f} / {mem['seed']:.0f} / {mem['sft']:.0f} | "
                f"{_x(v['ratio_seed_over_ours']['peak_memory'])} | {_x(v['ratio_sft_over_ours']['peak_memory'])} |"
            )
        lines.append("")

    s = head("caption_reward", "Caption reward, CIDEr-D (`bench/caption_reward.py`)")
    if s:
        lines += [
            f"Corpus {s['videos']} videos x {s['refs_per_video']} references; our scorer built once in "
            f"{s['scorer_build_s']:.1f} s.",
            "",
            "| batch | ours (ms) | pycocoevalcap (ms) | pycocoevalcap / ours | ours, df of the batch (ms) | "
            "pycocoevalcap / that | max abs diff |",
            "|---|---|---|---|---|---|---|",
        ]
        for size, b in s["batches"].items():
            lines.append(
                f"| {size} | {_ms(b['ours_ms'], 2)} | {_ms(b['pycocoevalcap_ms'])} | "
                f"{_x(b['ratio_pycocoevalcap_over_ours'], 1)} | {_ms(b['ours_batch_df_ms'], 1)} | "
                f"{_x(b['ratio_pycocoevalcap_over_ours_batch_df'], 1)} | "
                f"{b['max_abs_diff_vs_pycocoevalcap']:.1e} |"
            )
        lines.append("")

    s = head("scst_step", "`scst` step by phase (`bench/scst_step.py`)")
    if s:
        lines += [
            "| config | new tokens | generate K samples (ms) | greedy baseline (ms) | reward (ms) | "
            "forward + backward (ms) | bottleneck | samples/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v in s["variants"]:
            cells = " | ".join(
                _phase(v, name) for name in ("generate_samples", "generate_baseline", "reward", "forward_backward")
            )
            lines.append(
                f"| {v['label']} | {v['tokens']['generated_mean']:.0f} | {cells} | {v['bottleneck']} | "
                f"{v['samples_per_s']:.2f} |"
            )
        lines.append("")

    s = head("decode", "Video decoding (`bench/decode.py`)")
    if s:
        lines += [
            "Stock = LlamaFactory's `Qwen2VLPlugin._regularize_videos` with `video_backend: host` (PyAV decodes every "
            "frame; `video_fps` 2, `video_maxlen` 128, 256x256 px max). Ours = the same call with our frame sampler "
            "(same frames, bit for bit); cache = the same call served by `video_frame_cache` (epoch 2). Ceiling = "
            "frames / frames decoded from the keyframe before each sampled frame. decord: "
            + (
                "measured."
                if any(v["sides"].get("decord", {}).get("status") == "ok" for v in s["videos"].values())
                else "not installed here."
            ),
            "",
            "| video | frames | stock (s) | ours (s) | cache (s) | PyAV decode only (s) | stock / ours | ceiling | "
            "stock / cache |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, v in s["videos"].items():
            sd = v["sides"]
            info = v["video"]
            lines.append(
                f"| {label} ({info['width']}x{info['height']}, {info['fps']:.0f} fps) | {info['frames']} | "
                f"{_ms(sd['host_qwen2vl'].get('seconds'), 3)} | {_ms(sd['ours'].get('seconds'), 3)} | "
                f"{_ms(sd['ours_cache'].get('seconds'), 3)} | {_ms(sd['pyav_decode'].get('seconds'), 3)} | "
                f"{_x(v['ratio_host_over_ours'])} | {_x(v['ceiling']['ceiling_ratio'])} | "
                f"{_x(v['ratio_host_over_ours_cache'], 1)} |"
            )
        lines.append("")

    s = head("gpu", "Real-size Qwen2.5-VL (`bench/gpu.py`)")
    if s:
        if s["code_path_check_only"]:
            lines += [
                "CPU: the tiny config only, to keep the code path tested; these figures say nothing about a "
                "GPU. Run `python bench/run.py --device cuda` on a GPU.",
                "",
            ]
        device_name = m["device_name"] if s["code_path_check_only"] else s["device_name"]
        lines += [
            f"Device {device_name}, dense bf16 peak {s['peak_bf16_tflops'] or 'unknown'} TFLOP/s.",
            "",
            "| model | attention | route | tokens | step (ms) | tokens/s | MFU | MFU detailed | peak GiB | "
            "scst samples/s |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in s["variants"]:
            attn = row["attn"] + (" + liger" if row["liger"] else "")
            if row["status"] != "ok":
                lines.append(
                    f"| {row['model']} | {attn} | — | {row['status']}: {row.get('reason', '')[:80]} | | | | | | |"
                )
                continue
            for route, b in row["routes"].items():
                if b["status"] != "ok":
                    lines.append(f"| {row['model']} | {attn} | {route} | {b['status']} | | | | | | |")
                    continue
                mfu, mfu_d = _pct(b["mfu"]), _pct(b["mfu_detailed"])
                scst = _fmt(row["scst_samples_per_s"], ".2f") if route == "action_cls" else ""
                lines.append(
                    f"| {row['model']} | {attn} | {route} | {b['tokens']} | {_ms(b['step_ms'])} | "
                    f"{b['tokens_per_s']:.0f} | {mfu} | {mfu_d} | "
                    f"{_fmt(b['peak_allocated_gib'], '.1f')} | {scst} |"
                )
        lines.append("")

    s = head("fastslow_ar", "`fastslow_ar` training step vs stock `sft` (`bench/fastslow_step.py`)")
    if s:
        lines += [
            "Forward + backward + optimizer step through the host's trainers on the same videos; step time in wall "
            "and in process CPU time (all threads). Ratios: "
            "sft / route (higher = the route is cheaper than stock sft). Peak memory: "
            + (
                "first step in a fresh process, RSS above the start (— = not measured)."
                if results["device"] == "cpu"
                else "`max_memory_allocated` above the start of a step."
            ),
            "",
            "| config | route | video tokens / video | tokens / sample (padded batch) | step (ms) | "
            "step CPU time (ms) | peak MiB | sft / route: tokens | step time | CPU time | peak memory |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for v in s["variants"]:
            for route, b in v["routes"].items():
                r = v["ratio_sft_over_route"].get(route, {})
                label = {
                    "sft": "stock `sft`",
                    "sft_pool2": "`sft` + `video_token_pool_stride: 2`",
                    "fastslow": "`fastslow_ar` (slow 2 / fast 4, block mask)",
                    "fastslow_nomask": "`fastslow_ar`, causal mask",
                }.get(route, route)
                lines.append(
                    f"| {v['label']} | {label} | {b['video_tokens_per_video']} | "
                    f"{b['tokens_per_sample']} ({b['sequence_length']}) | "
                    f"{_ms(b['step_ms'])} | {_ms(b['step_cpu_ms'])} | {_fmt(b['peak_memory_mb'], '.0f')} | "
                    f"{_x(r.get('video_tokens'))} | {_x(r.get('step_time'))} | {_x(r.get('step_cpu_time'))} | "
                    f"{_x(r.get('peak_memory'))} |"
                )
        lines.append("")
    s = head("sparc_align", "SPARC local loss (`bench/sparc_loss.py`)")
    if s:
        lines += [
            "| B / L / P / D | vectorised (ms) | naive loop (ms) | naive / vectorised | max abs diff |",
            "|---|---|---|---|---|",
        ]
        for label, row in s["sizes"].items():
            lines.append(
                f"| {label} | {_ms(row['vectorised_ms'], 2)} | {_ms(row['naive_ms'], 2)} | "
                f"{row['ratio_naive_over_vectorised']:.1f} | {row['max_abs_diff']:.1e} |"
            )
        lines.append("")

    return "\n".join(lines).rstrip() + "\n"


def update_docs(path: str, device: str, section: str) -> None:
    """Replace the text between ``<!-- results:<device> -->`` and ``<!-- /results:<device> -->`` in ``path``
    (appending a section with the markers when absent; creating the file when missing)."""
    start, end = f"<!-- results:{device} -->", f"<!-- /results:{device} -->"
    text = ""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    block = f"{start}\n{section}{end}"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, count=1, flags=re.S)
    else:
        text = (text.rstrip() + "\n\n" if text else "# Benchmarks\n\n") + f"## Results: {device}\n\n{block}\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    from startup import detect_device  # bench/ is on sys.path (script directory)

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every benchmark in its smallest form (smoke run)")
    parser.add_argument("--only", action="append", default=None, help=f"comma list of {', '.join(BENCHMARKS)}")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda when nvidia-smi sees a GPU"
    )
    parser.add_argument("--results-dir", default=DEFAULT_RESULTS_DIR, help="where <device>[_quick].json goes")
    parser.add_argument(
        "--docs",
        default=None,
        help="markdown file whose generated section is rewritten "
        "(default docs/benchmarks.md for a full run; a quick run writes docs only when given)",
    )
    parser.add_argument("--workdir", default=os.path.join(HERE, ".cache"), help="cache of models and videos")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's dense bf16 peak for MFU")
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="per benchmark script run")
    parser.add_argument("--note", default=None, help="free text recorded with the results (e.g. machine load)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    args.device = args.device or detect_device()
    names = [n.strip() for item in (args.only or []) for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    args.names = [name for name in BENCHMARKS if name in names] if names else list(BENCHMARKS)  # suite order
    if args.docs is None and not args.quick:
        args.docs = DEFAULT_DOCS
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, fn in BENCHMARKS.items():
            print(f"{name:16s} {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0

    path = os.path.join(args.results_dir, f"{args.device}{'_quick' if args.quick else ''}.json")
    previous: dict[str, Any] = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            loaded = json.load(f)
        if loaded.get("device") == args.device and loaded.get("quick") == args.quick:
            previous = loaded.get("benchmarks", {})

    started = time.time()
    load_start = loadavg()
    print(
        f"benchmarks on {args.device} ({'quick' if args.quick else 'full'}): {', '.join(args.names)}; "
        f"load average {load_start}",
        flush=True,
    )
    entries: dict[str, Any] = {}
    failed = []
    with tempfile.TemporaryDirectory(prefix="lfv_bench_") as tmp:
        ctx = Context(
            quick=args.quick,
            device=args.device,
            tmp=tmp,
            workdir=os.path.abspath(args.workdir),
            peak_tflops=args.peak_tflops,
            timeout_s=args.timeout_s,
        )
        for index, name in enumerate(args.names, 1):
            print(f"[{index}/{len(args.names)}] {name} ...", flush=True)
            t0 = time.time()
            entry: dict[str, Any]
            try:
                entry = BENCHMARKS[name](ctx)
                entry.setdefault("status", "ok")
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
                entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[-3000:]}
                failed.append(name)
            entry.update(
                wall_s=round(time.time() - t0, 1),
                timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                loadavg_end=loadavg(),
                note=args.note,
            )
            entries[name] = entry
            print(f"[{index}/{len(args.names)}] {name}: {entry['status']} in {entry['wall_s']} s", flush=True)

    benchmarks = {name: previous[name] for name in BENCHMARKS if name in previous and name not in entries}
    benchmarks.update(entries)
    benchmarks = {name: benchmarks[name] for name in BENCHMARKS if name in benchmarks}
    results = {
        "suite": "llamafactory-video bench/run.py",
        "device": args.device,
        "quick": args.quick,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(args.device),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "note": args.note,
        "wall_s": round(time.time() - started, 1),
        "benchmarks": benchmarks,
    }
    os.makedirs(args.results_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")
    if args.docs:
        update_docs(args.docs, args.device, render_markdown(results))
        print(f"updated {args.docs} (section results:{args.device})")
    print(f"total {results['wall_s']} s; " + (f"FAILED: {', '.join(failed)}" if failed else "all benchmarks ran"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
