#!/usr/bin/env python
"""Convert Condensed Movies (clips.csv + descriptions.csv) to caption SFT data, and register it.

Videos are <video-root>/<upload_year>/<videoid>.<ext> (the official download layout) or
<video-root>/<videoid>.<ext> (flattened).

Example:
    python scripts/prepare_condensed_movies.py --clips /data/cmd/metadata/clips.csv \
        --descriptions /data/cmd/metadata/descriptions.csv --video-root /data/cmd/videos --output-dir data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from llamafactory_video.tools.convert import convert_condensed_movies, run_conversion
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.tools.convert import convert_condensed_movies, run_conversion


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, convert, print the summary; 1 on a malformed input (the error names file:line)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", required=True, help="clips.csv (videoid, upload_year, ...)")
    parser.add_argument("--descriptions", required=True, help="descriptions.csv (videoid, description, ...)")
    parser.add_argument("--video-root", required=True, help="folder of the videos")
    parser.add_argument("--output-dir", required=True, help="LlamaFactory dataset_dir to write into")
    parser.add_argument("--prefix", default="cmd", help="dataset name / file prefix (default: cmd)")
    parser.add_argument(
        "--video-exts", default="mkv,mp4,webm", help="extensions tried in order (default: mkv,mp4,webm)"
    )
    parser.add_argument("--skip-missing", action="store_true", help="drop the samples whose video does not exist")
    parser.add_argument("--no-register", action="store_true", help="do not touch dataset_info.json")
    args = parser.parse_args(argv)
    return run_conversion(
        convert_condensed_movies,
        args.clips,
        args.descriptions,
        args.video_root,
        args.output_dir,
        prefix=args.prefix,
        video_exts=[e.strip() for e in args.video_exts.split(",") if e.strip()],
        skip_missing=args.skip_missing,
        register=not args.no_register,
    )


if __name__ == "__main__":
    sys.exit(main())
