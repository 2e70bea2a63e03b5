#!/usr/bin/env python
"""Write the synthetic video action-recognition dataset (sharegpt + dataset_info.json).

Example:
    python scripts/make_synthetic_videos.py data/synthetic --num-classes 4 --formats mp4 avi webm
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from llamafactory_video.testing.synthetic_videos import MAX_CLASSES, make_action_dataset
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.testing.synthetic_videos import MAX_CLASSES, make_action_dataset


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write the dataset and print a one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="dataset directory (LlamaFactory dataset_dir)")
    parser.add_argument("--num-classes", type=int, default=4, help=f"number of classes, 1..{MAX_CLASSES}")
    parser.add_argument("--train-per-class", type=int, default=12)
    parser.add_argument("--test-per-class", type=int, default=4)
    parser.add_argument("--formats", nargs="+", default=["mp4", "avi", "webm"], help="container formats to cycle")
    parser.add_argument("--size", type=int, default=64, help="frame width/height in pixels (even)")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--fps", type=float, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prefix", default="synth_action", help="dataset name / file prefix")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    info = make_action_dataset(
        args.output_dir,
        num_classes=args.num_classes,
        train_per_class=args.train_per_class,
        test_per_class=args.test_per_class,
        formats=[f for item in args.formats for f in item.split(",") if f],
        size=args.size,
        num_frames=args.num_frames,
        fps=args.fps,
        seed=args.seed,
        prefix=args.prefix,
    )
    encoders = ", ".join(f"{fmt}={codec}" for fmt, codec in info["encoders"].items())
    print(
        f"wrote {info['num_train']} train / {info['num_test']} test videos ({info['num_classes']} classes; "
        f"{encoders}) to {info['output_dir']} in {time.perf_counter() - start:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
