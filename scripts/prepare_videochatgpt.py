#!/usr/bin/env python
"""Convert VideoChatGPT / VideoInstruct-100K QA (JSON or CSV) to LlamaFactory sharegpt data, and register it.

Video keys video_id / video_name / image_id, question keys q / Q / question (Q1 + Q2 for consistency QA),
answer keys a / A / answer; video files looked up as <id>, <id>.<ext> and with the ActivityNet v_ prefix.

Example:
    python scripts/prepare_videochatgpt.py --annotations /data/VideoInstruct_Dataset.json \
        --video-root /data/activitynet/videos --output-dir data --skip-missing
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from llamafactory_video.tools.convert import convert_videochatgpt, run_conversion
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.tools.convert import convert_videochatgpt, run_conversion


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, convert, print the summary; 1 on a malformed input (the error names file:line)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True, nargs="+", help="QA JSON / CSV file(s)")
    parser.add_argument("--video-root", required=True, help="folder of the videos")
    parser.add_argument("--output-dir", required=True, help="LlamaFactory dataset_dir to write into")
    parser.add_argument("--prefix", default="videochatgpt", help="dataset name / file prefix (default: videochatgpt)")
    parser.add_argument(
        "--video-exts",
        default="mp4,mkv,webm,avi,mov",
        help="extensions tried in order (default: mp4,mkv,webm,avi,mov)",
    )
    parser.add_argument("--skip-missing", action="store_true", help="drop the samples whose video does not exist")
    parser.add_argument("--no-register", action="store_true", help="do not touch dataset_info.json")
    args = parser.parse_args(argv)
    return run_conversion(
        convert_videochatgpt,
        args.annotations,
        args.video_root,
        args.output_dir,
        prefix=args.prefix,
        video_exts=[e.strip() for e in args.video_exts.split(",") if e.strip()],
        skip_missing=args.skip_missing,
        register=not args.no_register,
    )


if __name__ == "__main__":
    sys.exit(main())
