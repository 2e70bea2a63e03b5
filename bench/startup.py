#!/usr/bin/env python
"""Cost of the plugin's startup hook (``llamafactory_video.pth``) per Python process.

Sections (every run is a fresh subprocess of the same interpreter as this script):

(a) ``python -X importtime -c pass`` N times: the cumulative microseconds Python reports for
    ``llamafactory_video._bootstrap`` (which nests the package ``__init__``), i.e. what the hook adds
    to EVERY process, even ones that never touch LlamaFactory. Measured twice:
      * ``env``: with the environment as it is (note: a venv run with ``PYTHONDONTWRITEBYTECODE=1``
        and an editable install has no ``.pyc`` for the plugin, so it is compiled on every start);
      * ``cached``: with bytecode caching forced on into a throwaway ``PYTHONPYCACHEPREFIX`` (one
        warm-up run first), which is what a regular ``pip install`` (pre-compiled ``.pyc``) gets.
        Nothing is written into the repository or the venv.
(b) ``python -c "import llamafactory.extras.constants"`` with the plugin (patches active) vs
    ``LLAMAFACTORY_VIDEO_DISABLE=1``, alternating, wall time. The import pulls in torch/transformers/peft
    (seconds), so these runs are few. Both sides run under ``-X importtime`` so that the "with" side also
    reports the summed self time of the plugin modules the patches import (precise, unlike the wall ratio).
(c) ``llamafactory-cli help`` with vs without the plugin, alternating, wall time.
    In (b) and (c) "without" still runs the ``.pth`` (``_bootstrap`` is imported, then returns at once
    because of the env var): the difference is the finder plus the host patches, not the hook import,
    which (a) measures.

(b) and (c) are interleaved round by round (one with/without pair of each per round) for at most
``--heavy-runs`` rounds; after the first round, a new round starts only if it is expected to end within
``--budget-s`` seconds of the start of (b)/(c), so the default run stays under ~2 minutes on a busy box.

Output: a table on stdout and JSON (``--output``, default ``bench/results/startup_<cpu|cuda>.json``).
No assertions on timings anywhere: shared machines are noisy.

Usage: python bench/startup.py [--runs 20] [--quick] [--heavy-runs 3] [--budget-s 90] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


HERE = os.path.dirname(os.path.abspath(__file__))
DISABLE_ENV = "LLAMAFACTORY_VIDEO_DISABLE"
HOOK_MODULE = "llamafactory_video._bootstrap"
IMPORTTIME_RE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")
CONSTANTS_PROBE = (
    "import os, llamafactory.extras.constants as c; "
    "active = 'action_cls' in c.TRAINING_STAGES.values(); "
    "want = os.environ.get('" + DISABLE_ENV + "', '0') != '1'; "
    "assert active == want, ('plugin active' if active else 'plugin inactive', 'expected', want)"
)


# ----------------------------------------------------------------------------------------------- stats
def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(values: list[float]) -> dict:
    return {
        "n": len(values),
        "median": statistics.median(values) if values else float("nan"),
        "p10": percentile(values, 10),
        "p90": percentile(values, 90),
        "min": min(values) if values else float("nan"),
        "max": max(values) if values else float("nan"),
        "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": [round(v, 3) for v in values],
    }


# ----------------------------------------------------------------------------------------------- runs
def base_env() -> dict:
    env = dict(os.environ)
    env.pop(DISABLE_ENV, None)
    for key, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("HF_DATASETS_OFFLINE", "1"),
        ("TOKENIZERS_PARALLELISM", "false"),
        ("DISABLE_VERSION_CHECK", "1"),
    ):
        env.setdefault(key, value)
    return env


def timed_run(cmd: list[str], env: dict, timeout: float = 300) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed_ms = (time.perf_counter() - start) * 1000.0
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed (exit {proc.returncode}): {' '.join(cmd)}\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    return elapsed_ms, proc


def parse_importtime(stderr: str) -> dict[str, tuple[int, int]]:
    """{module: (self_us, cumulative_us)} for the first occurrence of each module."""
    out: dict[str, tuple[int, int]] = {}
    for line in stderr.splitlines():
        match = IMPORTTIME_RE.match(line)
        if match and match.group(4) not in out:
            out[match.group(4)] = (int(match.group(1)), int(match.group(2)))
    return out


def measure_hook(runs: int, env: dict) -> dict:
    hook_us, package_us, site_us, wall_ms = [], [], [], []
    for _ in range(runs):
        elapsed, proc = timed_run([sys.executable, "-X", "importtime", "-c", "pass"], env)
        times = parse_importtime(proc.stderr)
        if HOOK_MODULE not in times:
            raise RuntimeError(
                f"{HOOK_MODULE} not in `-X importtime` output: is llamafactory_video.pth installed in "
                f"{sys.executable}'s site-packages, and {DISABLE_ENV} irrelevant here (the hook always imports)?"
            )
        hook_us.append(times[HOOK_MODULE][1])
        package_us.append(times.get("llamafactory_video", (0, 0))[1])
        site_us.append(times.get("site", (0, 0))[1])
        wall_ms.append(elapsed)

    hook_ms = [v / 1000.0 for v in hook_us]
    return {
        "bootstrap_cumulative_ms": summarize(hook_ms),
        "package_init_cumulative_ms": summarize([v / 1000.0 for v in package_us]),
        "site_cumulative_ms": summarize([v / 1000.0 for v in site_us]),
        "python_c_pass_wall_ms": summarize(wall_ms),
        "hook_share_of_site": statistics.median(hook_us) / statistics.median(site_us) if any(site_us) else None,
    }


def compare(
    cmd: list[str], env: dict, with_ms: list[float], without_ms: list[float], order: int, plugin_ms: list | None = None
) -> None:
    """One with/without pair, the order alternating between rounds.

    With ``plugin_ms`` the command runs under ``-X importtime`` (both sides) and the "with" run records
    the summed self time of the plugin's modules other than the hook itself (measured in (a)).
    """
    disabled = dict(env, **{DISABLE_ENV: "1"})
    pair = [("with", env), ("without", disabled)]
    if order % 2:
        pair.reverse()
    for label, run_env in pair:
        elapsed, proc = timed_run(cmd, run_env)
        (with_ms if label == "with" else without_ms).append(elapsed)
        if plugin_ms is not None and label == "with":
            times = parse_importtime(proc.stderr)
            plugin_ms.append(
                sum(
                    self_us
                    for name, (self_us, _) in times.items()
                    if name.startswith("llamafactory_video.") and name != HOOK_MODULE
                )
                / 1000.0
            )


def ratio_block(with_ms: list[float], without_ms: list[float], cmd: list[str]) -> dict:
    with_s, without_s = summarize(with_ms), summarize(without_ms)
    return {
        "command": " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd)),
        "with_plugin_ms": with_s,
        "without_plugin_ms": without_s,
        "ratio_median": with_s["median"] / without_s["median"] if without_s["median"] else None,
        "delta_median_ms": with_s["median"] - without_s["median"],
        # per-pair ratios show how much of the difference is noise
        "pair_ratios": [round(a / b, 4) for a, b in zip(with_ms, without_ms)],
    }


def find_cli() -> str | None:
    candidate = os.path.join(os.path.dirname(sys.executable), "llamafactory-cli")
    return candidate if os.path.isfile(candidate) else shutil.which("llamafactory-cli")


def detect_device() -> str:
    """'cuda' when an NVIDIA GPU answers ``nvidia-smi -L`` (avoids importing torch here), else 'cpu'."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            proc = subprocess.run([smi, "-L"], check=False, capture_output=True, text=True, timeout=20)
            if proc.returncode == 0 and "GPU" in proc.stdout:
                return "cuda"
        except (OSError, subprocess.SubprocessError):
            pass
    return "cpu"


def machine_info(device: str) -> dict:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "device": device,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE"),
    }


# ----------------------------------------------------------------------------------------------- main
def fmt(summary: dict) -> str:
    return (
        f"{summary['median']:9.2f} {summary['p90']:9.2f} {summary['min']:9.2f} {summary['max']:9.2f} {summary['n']:4d}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=None, help="runs of section (a), per mode (default 20)")
    parser.add_argument("--quick", action="store_true", help="runs=5, heavy-runs=1")
    parser.add_argument("--heavy-runs", type=int, default=None, help="max with/without pairs for (b), (c) (default 3)")
    parser.add_argument("--budget-s", type=float, default=90.0, help="soft time budget for (b)+(c) after round 1")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="label of the results file")
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/startup_<device>.json)")
    args = parser.parse_args(argv)

    runs = args.runs if args.runs is not None else (5 if args.quick else 20)
    heavy_runs = args.heavy_runs if args.heavy_runs is not None else (1 if args.quick else 3)
    if runs < 1 or heavy_runs < 1:
        parser.error("--runs and --heavy-runs must be >= 1")

    device = detect_device() if args.device == "auto" else args.device
    output = args.output or os.path.join(HERE, "results", f"startup_{device}.json")
    env = base_env()
    started = time.perf_counter()

    # (a) the hook itself
    print(f"(a) python -X importtime -c pass x{runs} per mode ...", flush=True)
    hook = {"env": measure_hook(runs, env)}
    with tempfile.TemporaryDirectory(prefix="lfv_pycache_") as prefix:
        cached_env = dict(env, PYTHONPYCACHEPREFIX=prefix)
        cached_env.pop("PYTHONDONTWRITEBYTECODE", None)
        timed_run([sys.executable, "-c", "pass"], cached_env)  # warm-up: writes the .pyc files
        hook["cached"] = measure_hook(runs, cached_env)

    # (b) + (c), interleaved rounds
    constants_cmd = [sys.executable, "-X", "importtime", "-c", CONSTANTS_PROBE]
    cli = find_cli()
    cli_cmd = [cli, "help"] if cli else None
    b_with, b_without, c_with, c_without, b_plugin = [], [], [], [], []
    heavy_start = time.perf_counter()
    rounds = 0
    while rounds < heavy_runs:
        elapsed = time.perf_counter() - heavy_start
        if rounds and elapsed + elapsed / rounds > args.budget_s:
            break
        print(f"(b)/(c) round {rounds + 1}/{heavy_runs} ...", flush=True)
        compare(constants_cmd, env, b_with, b_without, rounds, plugin_ms=b_plugin)
        if cli_cmd:
            compare(cli_cmd, env, c_with, c_without, rounds)
        rounds += 1

    results = {
        "benchmark": "startup",
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(device),
        "settings": {
            "runs": runs,
            "heavy_runs_max": heavy_runs,
            "heavy_rounds_done": rounds,
            "budget_s": args.budget_s,
        },
        "hook": hook,
        "import_constants": dict(
            ratio_block(b_with, b_without, constants_cmd[:4] + ["<import llamafactory.extras.constants>"]),
            plugin_modules_self_ms=summarize(b_plugin),
        ),
        "cli_help": ratio_block(c_with, c_without, cli_cmd) if cli_cmd else None,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2)
        f.write("\n")

    # table
    print()
    print(
        f"machine: {results['machine']['platform']}, {results['machine']['cpu_count']} CPUs, "
        f"Python {results['machine']['python_version']}, device {device}, "
        f"load {results['machine']['loadavg_at_start']}"
    )
    print(f"{'measure (ms)':64s} {'median':>9s} {'p90':>9s} {'min':>9s} {'max':>9s} {'n':>4s}")
    for mode in ("env", "cached"):
        block = hook[mode]
        print(
            f"{'(a) hook: ' + HOOK_MODULE + ' cumulative [' + mode + ']':64s} {fmt(block['bootstrap_cumulative_ms'])}"
        )
        print(f"{'    site cumulative [' + mode + ']':64s} {fmt(block['site_cumulative_ms'])}")
        print(f"{'    python -X importtime -c pass, wall [' + mode + ']':64s} {fmt(block['python_c_pass_wall_ms'])}")
    for key, title in (
        ("import_constants", "(b) import llamafactory.extras.constants"),
        ("cli_help", "(c) llamafactory-cli help"),
    ):
        block = results[key]
        if block is None:
            print(f"{title}: skipped (llamafactory-cli not found)")
            continue
        print(f"{title + ', with plugin':64s} {fmt(block['with_plugin_ms'])}")
        print(f"{title + ', LLAMAFACTORY_VIDEO_DISABLE=1':64s} {fmt(block['without_plugin_ms'])}")
        print(
            f"{'    ratio of medians (with / without)':64s} {block['ratio_median']:9.3f}   "
            f"delta {block['delta_median_ms']:+.1f} ms, pair ratios {block['pair_ratios']}"
        )
        if "plugin_modules_self_ms" in block:
            print(
                f"{'    plugin modules self time (importtime), with plugin':64s} "
                f"{fmt(block['plugin_modules_self_ms'])}"
            )
    print(f"\nwrote {output} ({results['elapsed_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
