#!/usr/bin/env python
"""Convert an official UCF101 split to LlamaFactory JSON for `stage: action_cls` and register it.

Example:
    python scripts/prepare_ucf101.py --split-dir /data/ucf101/ucfTrainTestlist --video-root /data/ucf101/UCF-101 \
        --split 1 --output-dir data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from llamafactory_video.tools.convert import convert_ucf101, run_conversion
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.tools.convert import convert_ucf101, run_conversion


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, convert, print the summary; 1 on a malformed input (the error names file:line)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split-dir", required=True, help="folder with classInd.txt, trainlist0N.txt, testlist0N.txt")
    parser.add_argument("--video-root", required=True, help="the UCF-101 folder (one sub-folder per class)")
    parser.add_argument("--split", type=int, choices=(1, 2, 3), default=1, help="official split (default: 1)")
    parser.add_argument("--output-dir", required=True, help="LlamaFactory dataset_dir to write into")
    parser.add_argument("--prefix", default="ucf101", help="dataset name / file prefix (default: ucf101)")
    parser.add_argument("--skip-missing", action="store_true", help="drop samples whose video file does not exist")
    parser.add_argument("--no-register", action="store_true", help="do not touch dataset_info.json")
    args = parser.parse_args(argv)
    return run_conversion(
        convert_ucf101,
        args.split_dir,
        args.video_root,
        args.output_dir,
        split=args.split,
        prefix=args.prefix,
        skip_missing=args.skip_missing,
        register=not args.no_register,
    )


if __name__ == "__main__":
    sys.exit(main())
