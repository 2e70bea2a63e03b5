"""``llamafactory-video make-billiards``: write the synthetic billiards QA dataset (seed 002's HiLight task).

Example::

    llamafactory-video make-billiards --output data/billiards --train 2000 --test 200 --seed 0
    # -> data/billiards/{billiards_qa_train,billiards_qa_test}.json, videos/, dataset_info.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from typing import Any


HELP = "write synthetic billiards QA videos (which ball / which pocket / how many balls) in sharegpt format"


QUESTION_TYPES = ("ball", "pocket", "count")
"""The keys of ``synthetic_billiards.QUESTIONS`` (named here so that building the parser imports nothing)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="dataset directory (LlamaFactory dataset_dir) to write into")
    parser.add_argument("--train", type=int, default=64, help="training videos (default: 64)")
    parser.add_argument("--test", type=int, default=16, help="held-out videos (default: 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed; the same seed writes the same dataset (default: 0)")
    parser.add_argument(
        "--size", type=int, default=64, help="frame width = height in pixels, even, >= 32 (default: 64)"
    )
    parser.add_argument("--fps", type=float, default=4.0, help="frame rate of the clips (default: 4)")
    parser.add_argument(
        "--questions",
        default=",".join(QUESTION_TYPES),
        help=f"comma-separated question types out of {', '.join(QUESTION_TYPES)} (default: all)",
    )
    parser.add_argument("--min-balls", type=int, default=3, help="fewest coloured balls per table (default: 3)")
    parser.add_argument("--max-balls", type=int, default=5, help="most coloured balls per table (default: 5)")
    parser.add_argument("--prefix", default="billiards_qa", help="dataset name / file prefix (default: billiards_qa)")
    parser.add_argument("--system", default=None, help="system prompt stored in every sample (column `system`)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def _tqdm(iterable: Iterable[Any], total: int, description: str) -> Iterable[Any]:
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=description, unit="video", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from ..testing.synthetic_billiards import make_billiards_dataset

    questions = [q.strip() for q in args.questions.split(",") if q.strip()]
    try:
        summary = make_billiards_dataset(
            args.output,
            num_train=args.train,
            num_test=args.test,
            seed=args.seed,
            size=args.size,
            fps=args.fps,
            questions=questions,
            min_balls=args.min_balls,
            max_balls=args.max_balls,
            prefix=args.prefix,
            system=args.system,
            progress=None if args.no_progress else _tqdm,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        chance = ", ".join(f"{q} {p:.2f}" for q, p in summary["chance"].items())
        print(
            f"billiards QA -> {summary['output_dir']}\n"
            f"  {summary['train_dataset']}: {summary['num_train']} videos, {summary['num_train_samples']} samples\n"
            f"  {summary['test_dataset']}: {summary['num_test']} videos, {summary['num_test_samples']} samples\n"
            f"  chance accuracy: {chance}\n"
            f"  registered in {summary['output_dir']}/dataset_info.json"
        )
    return 0


COMMAND = (HELP, add_arguments, run)
