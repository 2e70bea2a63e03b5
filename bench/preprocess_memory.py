#!/usr/bin/env python
"""Peak RSS of LlamaFactory's dataset preprocessing (tokenising video samples for stock `sft`) against the number
of samples, stock (``LLAMAFACTORY_VIDEO_DISABLE=1``) vs with llamafactory-video (sampler, probe, loader patch).

Each measurement is one fresh process that parses the run's arguments with the host's ``get_train_args``, loads
the tokenizer / processor of a tiny Qwen2.5-VL and runs the host's ``get_dataset(..., stage="sft")`` on a
sharegpt dataset of N samples (each ``<video>`` question + answer, videos drawn from 16 short synthetic clips),
``preprocessing_num_workers`` 1, then reports ``ru_maxrss``. A process that only parses and loads the tokenizer
gives the baseline. Flat = the peak does not grow with N.

    python bench/preprocess_memory.py [--quick] [--sizes 2000,20000] [--workdir DIR] [--output FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any


HERE = os.path.dirname(os.path.abspath(__file__))
NUM_VIDEOS = 16


def make_data(workdir: str, n: int) -> str:
    """``<workdir>/pre_data`` with 16 clips and a dataset ``pre_<n>`` of n samples (cached)."""
    from llamafactory_video.testing.synthetic_videos import make_action_dataset

    data = os.path.join(workdir, "pre_data")
    if not os.path.isfile(os.path.join(data, "base_train.json")):
        make_action_dataset(data, num_classes=4, train_per_class=NUM_VIDEOS // 4, test_per_class=1, prefix="base")
    with open(os.path.join(data, "base_train.json"), encoding="utf-8") as f:
        base = json.load(f)
    name = f"pre_{n}"
    path = os.path.join(data, f"{name}.json")
    if not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as f:
            json.dump([base[i % len(base)] for i in range(n)], f)
    info_path = os.path.join(data, "dataset_info.json")
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    info[name] = dict(info["base_train"], file_name=f"{name}.json")
    with open(info_path, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1)
    return data


def child(model: str, data: str, n: int, tokenize: bool, out: str) -> None:
    """Parse, load the tokenizer, (tokenise the dataset,) print the peak RSS in MiB."""
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    keys = dict(
        stage="sft", model_name_or_path=model, do_train=True, finetuning_type="lora", template="qwen2_vl",
        dataset_dir=data, dataset=f"pre_{n}", cutoff_len=1024, video_maxlen=8, video_fps=2.0,
        video_max_pixels=12544, output_dir=out, overwrite_output_dir=True, overwrite_cache=True,
        preprocessing_num_workers=1, report_to="none",
    )
    model_args, data_args, training_args, _, _ = get_train_args(keys)
    module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    rows = 0
    started = time.time()
    if tokenize:
        dataset = get_dataset(template, model_args, data_args, training_args, stage="sft", **module)
        rows = len(dataset["train_dataset"])
    print(json.dumps({
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": rows,
        "seconds": time.time() - started,
    }))


def measure(model: str, data: str, n: int, tokenize: bool, stock: bool, tmp: str) -> dict[str, Any]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if stock:
        env["LLAMAFACTORY_VIDEO_DISABLE"] = "1"
    else:
        env.pop("LLAMAFACTORY_VIDEO_DISABLE", None)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", model, data, str(n), str(int(tokenize)), tmp]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"status": "failed", "tail": (proc.stdout + proc.stderr)[-2000:]}
    return {"status": "ok", **json.loads(lines[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 50 and 200")
    parser.add_argument("--sizes", default="2000,20000", help="numbers of samples (comma-separated)")
    parser.add_argument("--workdir", default=os.path.join(HERE, ".cache"), help="tiny model and data cache")
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/preprocess_memory_cpu.json)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        model, data, n, tokenize, out = args.child
        child(model, data, int(n), tokenize == "1", out)
        return 0
    from llamafactory_video.testing.tiny_model import build_tiny_model

    sizes = [50, 200] if args.quick else [int(x) for x in args.sizes.split(",")]
    model = os.path.join(args.workdir, "tiny-qwen2_5-vl")
    if not os.path.isfile(os.path.join(model, "config.json")):
        build_tiny_model(model, arch="qwen2_5_vl")
    tmp = os.path.join(args.workdir, "pre_out")
    results: dict[str, Any] = {}
    started = time.time()
    for n in sizes:
        data = make_data(args.workdir, n)
        for side, stock in (("stock", True), ("ours", False)):
            print(f"{side}: {n} samples ...", flush=True)
            results.setdefault(str(n), {})[side] = measure(model, data, n, True, stock, tmp)
    baseline = {side: measure(model, make_data(args.workdir, sizes[0]), sizes[0], False, stock, tmp)
                for side, stock in (("stock", True), ("ours", False))}
    output = {
        "benchmark": "preprocess_memory",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python bench/preprocess_memory.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "baseline_no_tokenising": baseline,
        "sizes": results,
        "wall_s": time.time() - started,
    }
    path = args.output or os.path.join(HERE, "results", "preprocess_memory_cpu.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(output, f, indent=2)
        f.write("\n")
    print(f"{'samples':>8s} {'side':6s} {'peak MiB':>9s} {'above baseline':>15s} {'rows':>6s} {'s':>7s}")
    for n, row in results.items():
        for side, block in row.items():
            if block["status"] != "ok":
                print(f"{n:>8s} {side:6s} failed: {block['tail'][-300:]}")
                continue
            base = baseline[side].get("peak_rss_mib") or 0
            print(
                f"{n:>8s} {side:6s} {block['peak_rss_mib']:9.0f} {block['peak_rss_mib'] - base:15.0f} "
                f"{block['rows']:6d} {block['seconds']:7.1f}"
            )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
