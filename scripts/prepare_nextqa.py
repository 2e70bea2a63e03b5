#!/usr/bin/env python
"""Convert NExT-QA multiple-choice QA (train.csv / val.csv / test.csv) to sharegpt data for `stage: scst` with
the `option_accuracy` reward, and register it (references, answer, category = question type).

Example:
    python scripts/prepare_nextqa.py --annotations nextqa/train.csv nextqa/val.csv \
        --video-map nextqa/map_vid_vidorID.json --video-root NExTVideo --output-dir data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from llamafactory_video.tools.convert import convert_nextqa, run_conversion
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.tools.convert import convert_nextqa, run_conversion


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, convert, print the summary; 1 on a malformed input (the error names file:line)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True, nargs="+", help="NExT-QA csv file(s), one output each")
    parser.add_argument("--video-root", required=True, help="folder of the videos (NExTVideo)")
    parser.add_argument("--video-map", default=None, help="map_vid_vidorID.json (video id -> folder/vidor id)")
    parser.add_argument("--output-dir", required=True, help="LlamaFactory dataset_dir to write into")
    parser.add_argument("--prefix", default="nextqa", help="dataset name / file prefix (default: nextqa)")
    parser.add_argument("--skip-missing", action="store_true", help="drop the questions whose video does not exist")
    parser.add_argument("--no-register", action="store_true", help="do not touch dataset_info.json")
    args = parser.parse_args(argv)
    return run_conversion(
        convert_nextqa,
        args.annotations,
        args.video_root,
        args.output_dir,
        prefix=args.prefix,
        video_map=args.video_map,
        skip_missing=args.skip_missing,
        register=not args.no_register,
    )


if __name__ == "__main__":
    sys.exit(main())
