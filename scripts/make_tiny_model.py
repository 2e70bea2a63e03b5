#!/usr/bin/env python
"""Build a tiny random Qwen2-VL / Qwen2.5-VL checkpoint (real tokenizer + processor) offline.

Example:
    python scripts/make_tiny_model.py /tmp/tiny-qwen2_5_vl --arch qwen2_5_vl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from llamafactory_video.testing.tiny_model import ARCHITECTURES, VOCAB_LAYOUTS, build_tiny_model
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.testing.tiny_model import ARCHITECTURES, VOCAB_LAYOUTS, build_tiny_model


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build the checkpoint and print a one-line summary."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="directory to write the checkpoint to")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="qwen2_5_vl")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    parser.add_argument("--hidden-size", type=int, default=48, help="text hidden size (multiple of 8, >= 24)")
    parser.add_argument("--num-layers", type=int, default=2, help="number of text decoder layers")
    parser.add_argument(
        "--vocab-size", type=int, default=None, help="embedding rows (default: len(tokenizer) padded to 64, +64 spare)"
    )
    parser.add_argument(
        "--vocab-layout",
        choices=VOCAB_LAYOUTS,
        default="padded",
        help="without --vocab-size: `padded` (spare embedding rows) or `exact` (len(tokenizer) rows: a new token "
        "resizes the embedding)",
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    path = build_tiny_model(
        args.output_dir,
        arch=args.arch,
        seed=args.seed,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        vocab_size=args.vocab_size,
        vocab_layout=args.vocab_layout,
    )
    print(f"wrote tiny {args.arch} checkpoint to {path} in {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
