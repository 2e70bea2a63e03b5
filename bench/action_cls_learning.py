#!/usr/bin/env python
"""Does `stage: action_cls` learn every time? The demo recipe over several training seeds and model inits.

Trains ``examples/demo/action_cls_tiny.yaml`` (or ``--config``) through the stock ``llamafactory-cli`` on the
demo's synthetic 4-class task (96 train / 32 held-out videos), once per (model init, training seed): the tiny
Qwen2.5-VL is built offline with each ``--model-seeds`` value (different random weights), the run is launched
with each ``--seeds`` value (``seed=`` override: data order, head init, LoRA init). Reports per run the held-out
accuracy, the first / last logged classification loss, the largest logged gradient norm and whether the stage's
divergence watch fired, as a markdown table and JSON (``bench/results/action_cls_learning.json``).

This is a learning check, not a timing benchmark: runs go ``--jobs`` at a time with the cores split between
them (``OMP_NUM_THREADS``). Extra ``key=value`` arguments after ``--`` override the recipe for every run
(e.g. ``-- learning_rate=1e-2`` to see the divergence watch).

    python bench/action_cls_learning.py [--seeds 1,2,3,4,5] [--model-seeds 0,1] [--vocab padded|exact]
                                        [--jobs 2] [--threshold 0.9] [--output FILE] [-- key=value ...]
Exit status 1 when a run fails or ends below ``--threshold``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor


HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def build_assets(workdir: str, model_seeds: list[int], vocab: str) -> tuple[dict[int, str], dict]:
    from llamafactory_video.testing.synthetic_videos import make_action_dataset
    from llamafactory_video.testing.tiny_model import build_tiny_model

    models = {}
    for model_seed in model_seeds:
        path = os.path.join(workdir, f"tiny-qwen2_5-vl-init{model_seed}-{vocab}")
        if not os.path.isfile(os.path.join(path, "config.json")):
            build_tiny_model(path, arch="qwen2_5_vl", seed=model_seed, vocab_layout=vocab)
        models[model_seed] = path
    data = make_action_dataset(os.path.join(workdir, "data"), num_classes=4, train_per_class=24, test_per_class=8)
    return models, data


def run_one(config: str, model: str, data_dir: str, out: str, seed: int, threads: int, overrides: list[str]) -> dict:
    cli = os.path.join(os.path.dirname(sys.executable), "llamafactory-cli")
    command = [
        cli,
        "train",
        config,
        f"model_name_or_path={model}",
        f"dataset_dir={data_dir}",
        f"output_dir={out}",
        f"seed={seed}",
        "do_predict=false",
        "plot_loss=false",
        *overrides,
    ]
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    start = time.time()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    with open(out + ".log", "w", encoding="utf-8") as f:
        f.write(log)
    row = {"seconds": round(time.time() - start), "returncode": proc.returncode, "log": out + ".log"}
    row["divergence_watch"] = "collapsed" in log or "diverged" in log
    results = os.path.join(out, "eval_results.json")
    if os.path.isfile(results):
        with open(results, encoding="utf-8") as f:
            row["accuracy"] = json.load(f)["eval_accuracy"]
    state_path = os.path.join(out, "trainer_state.json")
    if os.path.isfile(state_path):
        with open(state_path, encoding="utf-8") as f:
            history = json.load(f)["log_history"]
        losses = [e["action_cls/loss_cls"] for e in history if "action_cls/loss_cls" in e]
        norms = [e["grad_norm"] for e in history if "grad_norm" in e and e["grad_norm"] is not None]
        if losses:
            row["first_loss"], row["last_loss"] = round(losses[0], 3), round(losses[-1], 3)
        if norms:
            row["max_grad_norm"] = round(max(norms), 1)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(REPO, "examples", "demo", "action_cls_tiny.yaml"))
    parser.add_argument("--seeds", default="1,2,3,4,5", help="training seeds (comma-separated)")
    parser.add_argument("--model-seeds", default="0,1", help="tiny model weight-init seeds (comma-separated)")
    parser.add_argument("--vocab", default="padded", choices=("padded", "exact"), help="tiny model vocab layout")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--workdir", default=os.path.join(REPO, "bench", ".work", "action_cls_learning"))
    parser.add_argument("--output", default=os.path.join(HERE, "results", "action_cls_learning.json"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the recipe (after --)")
    args = parser.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    models, data = build_assets(args.workdir, _ints(args.model_seeds), args.vocab)
    threads = max(1, (os.cpu_count() or 2) // max(1, args.jobs))
    runs = [(m, s) for m in _ints(args.model_seeds) for s in _ints(args.seeds)]
    print(f"[bench] {len(runs)} runs of {os.path.relpath(args.config, REPO)}, {args.jobs} at a time", flush=True)

    def job(run: tuple[int, int]) -> dict:
        model_seed, seed = run
        out = os.path.join(args.workdir, f"run-init{model_seed}-seed{seed}")
        row = run_one(args.config, models[model_seed], data["output_dir"], out, seed, threads, args.overrides)
        row.update(model_seed=model_seed, seed=seed)
        print(
            f"[bench] init {model_seed} seed {seed}: accuracy {row.get('accuracy')} ({row['seconds']} s)", flush=True
        )
        return row

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(job, runs))

    chance = 1.0 / 4
    print(
        f"\n| model init | seed | held-out accuracy | first -> last loss | max grad norm | watch |  (chance {chance})"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['model_seed']} | {row['seed']} | {row.get('accuracy', 'FAILED')} | "
            f"{row.get('first_loss')} -> {row.get('last_loss')} | {row.get('max_grad_norm')} | "
            f"{'fired' if row['divergence_watch'] else '-'} |"
        )
    accuracies = [row.get("accuracy", -math.inf) for row in rows]
    ok = all(row["returncode"] == 0 for row in rows) and min(accuracies) >= args.threshold
    print(
        f"\nmin {min(accuracies):.3f}, mean {sum(accuracies) / len(accuracies):.3f}; threshold {args.threshold}: "
        f"{'all pass' if ok else 'FAIL'}"
    )
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(
            {
                "config": os.path.relpath(args.config, REPO),
                "vocab": args.vocab,
                "overrides": args.overrides,
                "threshold": args.threshold,
                "runs": [{k: v for k, v in row.items() if k != "log"} for row in rows],
            },
            f,
            indent=2,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
