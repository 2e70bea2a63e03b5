#!/usr/bin/env python
"""Synthetic billiards QA (seed 002): how far above chance a trivial pixel classifier reads the pocketed ball.

For each seed: ``make_billiards_dataset`` writes ``--train`` / ``--test`` videos, the MP4 files are decoded with
PyAV, and a nearest-centroid classifier on ``colour_histogram_change`` (the first frame's colour histogram minus
the last frame's, over the pixels that changed) is fitted on the training videos and scored on the held-out ones.
Reported per seed and over seeds: accuracy, the majority-colour baseline, chance (a uniform guess among the balls on
the table), ``ratio`` = accuracy / chance, and the generation speed (videos per second, this machine). No model, no
GPU; no assertions.

    python bench/billiards_pixel_baseline.py [--quick] [--seeds 0 1 2 3 4] [--train 40] [--test 40] [--output FILE]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter

import av
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from llamafactory_video.testing.synthetic_billiards import (  # noqa: E402
    colour_histogram_change,
    make_billiards_dataset,
    nearest_centroid_fit,
    nearest_centroid_predict,
)

DEFAULT_OUTPUT = os.path.join(HERE, "results", "billiards_pixel_baseline.json")


def _decode(path: str) -> np.ndarray:
    with av.open(path) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def run_seed(seed: int, num_train: int, num_test: int, size: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        info = make_billiards_dataset(
            out, num_train=num_train, num_test=num_test, seed=seed, size=size, questions=("ball",)
        )
        seconds = time.perf_counter() - start
        data = {}
        for split in ("train", "test"):
            with open(os.path.join(out, f"billiards_qa_{split}_clips.json"), encoding="utf-8") as f:
                clips = json.load(f)
            x = np.stack([colour_histogram_change(_decode(os.path.join(out, c["video"]))) for c in clips])
            data[split] = (x, [c["answers"]["ball"] for c in clips])
    predicted = nearest_centroid_predict(nearest_centroid_fit(*data["train"]), data["test"][0])
    truth = data["test"][1]
    majority = Counter(data["train"][1]).most_common(1)[0][0]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth)]))
    return {
        "seed": seed,
        "accuracy": accuracy,
        "majority_baseline": float(np.mean([t == majority for t in truth])),
        "chance": info["chance"]["ball"],
        "ratio": accuracy / info["chance"]["ball"],
        "videos_per_second": (num_train + num_test) / seconds,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--train", type=int, default=40, help="training videos per seed")
    parser.add_argument("--test", type=int, default=40, help="held-out videos per seed")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="one seed, 8 + 4 videos (smoke test)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.train, args.test = args.seeds[:1], 8, 4
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, args.train, args.test, args.size))
        print(
            f"seed {seed}: accuracy {rows[-1]['accuracy']:.3f} (chance {rows[-1]['chance']:.3f}, "
            f"majority {rows[-1]['majority_baseline']:.3f})",
            flush=True,
        )
    accuracies = [r["accuracy"] for r in rows]
    result = {
        "benchmark": "billiards_pixel_baseline",
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python_version": sys.version.split()[0],
        },
        "settings": {
            "seeds": args.seeds,
            "train": args.train,
            "test": args.test,
            "size": args.size,
            "quick": args.quick,
        },
        "per_seed": rows,
        "summary": {
            "accuracy_mean": statistics.mean(accuracies),
            "accuracy_min": min(accuracies),
            "accuracy_max": max(accuracies),
            "chance": rows[0]["chance"],
            "ratio_mean": statistics.mean(r["ratio"] for r in rows),
            "majority_baseline_mean": statistics.mean(r["majority_baseline"] for r in rows),
            "videos_per_second_median": statistics.median(r["videos_per_second"] for r in rows),
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    s = result["summary"]
    print(
        f"accuracy mean {s['accuracy_mean']:.3f} (min {s['accuracy_min']:.3f}) vs chance {s['chance']:.3f}: "
        f"ratio {s['ratio_mean']:.2f}; wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
