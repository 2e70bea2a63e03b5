#!/usr/bin/env python
"""Does `stage: scst` with the multiple-choice reward raise held-out accuracy on a synthetic video QA set?

"What colour is the moving object?" with the 4 class colours as options A-D
(``testing.synthetic_qa.make_choice_qa_dataset``, 32 train / 16 held-out videos). The tiny Qwen2.5-VL is trained
with cross-entropy on the answers (stock ``sft``, full fine-tuning, ``--xe-epochs``), then ``stage: scst`` with
``scst_rewards: option_accuracy`` per (baseline, seed). Reported: held-out greedy accuracy after XE and after
SCST (``eval_reward_option_accuracy``). JSON in ``bench/results/scst_choice_qa.json``.

    python bench/scst_choice_qa.py [--seeds 1,2,3] [--variants grpo,greedy] [--xe-epochs 2] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from scst_preference import VARIANTS, _value, run_cli, scst_config, xe_config  # bench/ is on sys.path


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))


def accuracy(out: str) -> float:
    with open(os.path.join(out, "eval_results.json"), encoding="utf-8") as f:
        return json.load(f)["eval_reward_option_accuracy"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--variants", default="grpo,greedy")
    parser.add_argument("--xe-epochs", type=float, default=2.0)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "scst_choice_qa.json"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides of every SCST run")
    args = parser.parse_args()

    from llamafactory_video.testing.synthetic_qa import make_choice_qa_dataset
    from llamafactory_video.testing.tiny_model import build_tiny_model

    workdir = args.workdir or tempfile.mkdtemp(prefix="scst_choice_qa_")
    os.makedirs(workdir, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    model = os.path.join(workdir, "tiny-qwen2_5-vl")
    if not os.path.isfile(os.path.join(model, "config.json")):
        build_tiny_model(model, arch="qwen2_5_vl")
    data = make_choice_qa_dataset(os.path.join(workdir, "data"))
    xe = os.path.join(workdir, f"xe{args.xe_epochs:g}")
    if not os.path.isfile(os.path.join(xe, "config.json")):
        run_cli(dict(xe_config(model, data, xe), num_train_epochs=args.xe_epochs), workdir, "xe", env)
    overrides = {key: _value(value) for key, value in (part.split("=", 1) for part in args.overrides)}
    common = dict(scst_max_new_tokens=4, max_new_tokens=4, **overrides)
    before_out = os.path.join(workdir, "before")
    run_cli(scst_config(xe, data, before_out, "option_accuracy", 1, do_train=False, **common), workdir, "before", env)
    before = accuracy(before_out)
    print(f"held-out accuracy after XE: {before:.3f}", flush=True)
    rows = []
    for variant in args.variants.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            out = os.path.join(workdir, f"{variant}_seed{seed}")
            config = scst_config(xe, data, out, "option_accuracy", args.epochs, seed=seed, **VARIANTS[variant])
            config.update(common)
            seconds = run_cli(config, workdir, f"{variant}_seed{seed}", env)
            row = {"variant": variant, "seed": seed, "acc_before": before, "acc_after": accuracy(out),
                   "seconds": round(seconds, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"xe_epochs": args.xe_epochs, "epochs": args.epochs, "overrides": overrides, "runs": rows}, f,
                  indent=2)
    return 0 if all(r["acc_after"] > r["acc_before"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
