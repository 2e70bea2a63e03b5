#!/usr/bin/env python
"""Convert a Something-Something v2 annotation file to LlamaFactory JSON for `stage: action_cls` and register it.

Example:
    python scripts/prepare_sthsthv2.py --labels /data/ssv2/labels.json --annotations /data/ssv2/train.json \
        --video-root /data/ssv2/20bn-something-something-v2 --output data/sthsthv2_train.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from llamafactory_video.tools.convert import convert_sthsthv2, run_conversion
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.tools.convert import convert_sthsthv2, run_conversion


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, convert, print the summary; 1 on a malformed input (the error names file:line)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", required=True, help='the official labels.json ({name: "index"})')
    parser.add_argument("--annotations", required=True, help="train.json, validation.json or test.json")
    parser.add_argument("--video-root", required=True, help="folder of <id>.webm videos")
    parser.add_argument("--output", required=True, help="output JSON file; its folder is the dataset_dir")
    parser.add_argument("--dataset-name", default=None, help="name in dataset_info.json (default: output file stem)")
    parser.add_argument(
        "--label-names-file",
        default="sthsthv2_labels.json",
        help="label-names file written next to --output (default: sthsthv2_labels.json)",
    )
    parser.add_argument("--video-ext", default="webm", help="video extension (default: webm)")
    parser.add_argument("--skip-missing", action="store_true", help="drop samples whose video file does not exist")
    parser.add_argument("--no-register", action="store_true", help="do not touch dataset_info.json")
    args = parser.parse_args(argv)
    return run_conversion(
        convert_sthsthv2,
        args.labels,
        args.annotations,
        args.video_root,
        args.output,
        dataset_name=args.dataset_name,
        label_names_file=args.label_names_file,
        video_ext=args.video_ext,
        skip_missing=args.skip_missing,
        register=not args.no_register,
    )


if __name__ == "__main__":
    sys.exit(main())
