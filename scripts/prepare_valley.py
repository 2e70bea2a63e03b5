#!/usr/bin/env python
"""Convert Valley annotations (Valley-webvid2M-Pretrain-703K `chat.json`, Valley-Instruct-73k) to LlamaFactory data.

Entries {"id", "video", "conversations": [{"from": "human"|"gpt", "value"}], "source"?}; videos looked up as
<video-root>/<video>, then under <video-root>/<source>/ and <video-root>/webvid/ (Valley's own layout), with .mp4
added when the name has none.

Example:
    python scripts/prepare_valley.py --annotations /data/Valley-webvid2M-Pretrain-703K/chat.json \
        --video-root /data/webvid/videos --output-dir data --skip-missing
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from llamafactory_video.tools.convert import convert_valley, run_conversion
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.tools.convert import convert_valley, run_conversion


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, convert, print the summary; 1 on a malformed input (the error names file:line)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--annotations", required=True, nargs="+", help="annotation JSON / JSONL files")
    parser.add_argument(
        "--video-root", required=True, help="Valley's video_folder: the entries' `video` paths are under it"
    )
    parser.add_argument("--output-dir", required=True, help="LlamaFactory dataset_dir to write into")
    parser.add_argument("--prefix", default="valley", help="dataset name / file prefix (default: valley)")
    parser.add_argument("--skip-missing", action="store_true", help="drop the samples whose video does not exist")
    parser.add_argument("--no-register", action="store_true", help="do not touch dataset_info.json")
    args = parser.parse_args(argv)
    return run_conversion(
        convert_valley,
        args.annotations,
        args.video_root,
        args.output_dir,
        prefix=args.prefix,
        skip_missing=args.skip_missing,
        register=not args.no_register,
    )


if __name__ == "__main__":
    sys.exit(main())
