#!/usr/bin/env python
"""Convert MSR-VTT (videodatainfo JSON) to caption SFT data and caption RL/eval data, and register them.

Example:
    python scripts/prepare_msrvtt.py --annotations /data/msrvtt/train_val_videodatainfo.json \
        --video-root /data/msrvtt/TrainValVideo --output-dir data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from llamafactory_video.tools.convert import convert_msrvtt, run_conversion
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.tools.convert import convert_msrvtt, run_conversion


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, convert, print the summary; 1 on a malformed input (the error names file:line)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True, help="MSR-VTT videodatainfo JSON (videos + sentences)")
    parser.add_argument("--video-root", required=True, help="folder of <video_id>.mp4 videos")
    parser.add_argument("--output-dir", required=True, help="LlamaFactory dataset_dir to write into")
    parser.add_argument("--prefix", default="msrvtt", help="dataset name / file prefix (default: msrvtt)")
    parser.add_argument("--video-ext", default="mp4", help="video extension (default: mp4)")
    parser.add_argument("--skip-missing", action="store_true", help="drop the rows of videos that do not exist")
    parser.add_argument("--no-register", action="store_true", help="do not touch dataset_info.json")
    args = parser.parse_args(argv)
    return run_conversion(
        convert_msrvtt,
        args.annotations,
        args.video_root,
        args.output_dir,
        prefix=args.prefix,
        video_ext=args.video_ext,
        skip_missing=args.skip_missing,
        register=not args.no_register,
    )


if __name__ == "__main__":
    sys.exit(main())
