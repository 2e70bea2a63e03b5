#!/usr/bin/env python
"""Build a tiny random CLIP (or SigLIP) dual encoder offline and, optionally, the synthetic alignment videos.

python scripts/make_tiny_clip.py --output demo_assets/tiny-clip [--kind clip|siglip] [--data-dir demo_assets/alignment]
"""

import argparse
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo_assets/tiny-clip")
    parser.add_argument("--kind", choices=("clip", "siglip"), default="clip")
    parser.add_argument("--data-dir", default=None, help="also write the colour/position videos and captions here")
    args = parser.parse_args()
    from llamafactory_video.testing.tiny_dual_encoder import build_tiny_dual_encoder

    print(f"tiny {args.kind}: {build_tiny_dual_encoder(args.output, kind=args.kind)}")
    if args.data_dir:
        from llamafactory_video.testing.synthetic_videos import make_alignment_dataset

        info = make_alignment_dataset(args.data_dir)
        first = info["test_items"][0]
        with open(os.path.join(args.data_dir, "synth_align_test_captions.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(c for item in info["test_items"][:4] for c in item["captions"]) + "\n")
        print(
            f"alignment data: {info['num_train_videos']} train videos ({info['num_train_captions']} captions), "
            f"{info['num_test_videos']} test videos; e.g. {first['video']}: {first['captions']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
