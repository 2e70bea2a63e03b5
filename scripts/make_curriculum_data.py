#!/usr/bin/env python
"""Write the synthetic datasets of the tiny three-stage curriculum (examples/curriculum/tiny/).

Example:
    python scripts/make_curriculum_data.py demo_assets/curriculum_data
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

try:
    from llamafactory_video.testing.synthetic_qa import make_curriculum_dataset
except ImportError:  # running from a source checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from llamafactory_video.testing.synthetic_qa import make_curriculum_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", help="dataset directory (LlamaFactory dataset_dir)")
    parser.add_argument("--per-class", type=int, default=2, help="samples per class and stage (default 2)")
    args = parser.parse_args(argv)
    print(json.dumps(make_curriculum_dataset(args.output_dir, per_class=args.per_class), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
