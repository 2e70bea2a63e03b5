#!/usr/bin/env python
"""HiLight billiards demo over seeds: held-out "Which ball was pocketed?" accuracy vs chance, each seed a full
``scripts/hilight_demo.py`` run (build -> stage 1 -> stage 2 -> predict, all through the stock ``llamafactory-cli``).
Peer figures in the same file: chance (a uniform guess among the balls on the table) and the majority colour; the
pixel baseline of the same data is ``bench/billiards_pixel_baseline.py``. No assertions.

    python bench/hilight_billiards_demo.py [--seeds 0 1 2] [--train 300] [--test 80] [--stage1-epochs 1]
        [--stage2-epochs 40] [--stage2-lr 1e-3] [--stage2-finetuning lora|full]
        [--output bench/results/hilight_billiards_demo.json]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--test", type=int, default=80)
    parser.add_argument("--stage1-epochs", type=float, default=1.0)
    parser.add_argument("--stage2-epochs", type=float, default=40.0)
    parser.add_argument("--stage2-lr", type=float, default=1e-3)
    parser.add_argument("--stage2-finetuning", choices=["full", "lora"], default="lora")
    parser.add_argument("--output", default=os.path.join(HERE, "results", "hilight_billiards_demo.json"))
    args = parser.parse_args()
    runs = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "result.json")
            command = [sys.executable, os.path.join(ROOT, "scripts", "hilight_demo.py"), "--workdir", tmp]
            command += ["--seed", str(seed), "--train", str(args.train), "--test", str(args.test)]
            command += ["--stage1-epochs", str(args.stage1_epochs), "--stage2-epochs", str(args.stage2_epochs)]
            command += ["--stage2-lr", str(args.stage2_lr), "--stage2-finetuning", args.stage2_finetuning]
            subprocess.run(command + ["--json", out], check=True)
            runs.append(json.load(open(out, encoding="utf-8")))
        print(json.dumps(runs[-1]), flush=True)
    accuracy = [r["accuracy"] for r in runs]
    result = dict(
        command="python bench/hilight_billiards_demo.py " + " ".join(sys.argv[1:]),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        machine=f"{platform.machine()} {os.cpu_count()} CPUs (shared)",
        settings=dict(vars(args), output=os.path.relpath(args.output, os.path.dirname(HERE))),
        runs=runs,
        mean_accuracy=statistics.mean(accuracy),
        min_accuracy=min(accuracy),
        mean_chance=statistics.mean(r["chance"] for r in runs),
        mean_ratio_to_chance=statistics.mean(r["ratio_to_chance"] for r in runs),
    )
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
