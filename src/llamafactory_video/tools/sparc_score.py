r"""``llamafactory-video score``: rank candidate captions for one video with a ``sparc_align`` model.

``--texts`` is a text file with one caption per line (blank lines and ``#`` comments skipped) or a JSON list. Prints
one line per caption, best first: rank, cosine similarity, the model's logit (``exp(logit_scale) * cosine``, the
seed's "score"), caption. ``--json`` prints ``[{"rank", "caption", "cosine", "logit"}]`` instead.
"""

import argparse
import json
import os
import sys

HELP = "rank candidate captions for one video with a sparc_align dual encoder (the seed's validation lists)"


def read_texts(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        content = f.read()
    if path.endswith(".json"):
        texts = json.loads(content)
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{path}: expected a JSON list of strings")
    else:
        texts = [line.strip() for line in content.splitlines()]
        texts = [t for t in texts if t and not t.startswith("#")]
    if not texts:
        raise ValueError(f"{path}: no caption found")
    return texts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="output_dir of a sparc_align run")
    parser.add_argument("--video", required=True, help="video file")
    parser.add_argument("--texts", required=True, help="candidate captions: one per line, or a JSON list")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    for label, path in (("--model", args.model), ("--video", args.video), ("--texts", args.texts)):
        if not os.path.exists(path):
            print(f"error: {label} {path} does not exist", file=sys.stderr)
            return 2
    try:
        texts = read_texts(args.texts)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from ..model.dual_encoder import load_dual_encoder

    encoder = load_dual_encoder(args.model, device=args.device)
    rows = encoder.score(args.video, texts)
    if args.json:
        print(json.dumps([{"rank": i + 1, "caption": t, "cosine": c, "logit": s} for i, (t, c, s) in enumerate(rows)]))
    else:
        for i, (text, cosine, logit) in enumerate(rows):
            print(f"{i + 1:>3}  cos {cosine:+.4f}  logit {logit:+8.3f}  {text}")
    return 0


COMMAND = (HELP, add_arguments, run)
