#!/usr/bin/env python
"""Does `stage: scst` with the multiple-choice reward raise held-out accuracy on a synthetic video QA set?

"What colour is the moving object?" with the 4 class colours as options A-D, always in class order, so the right
letter is a function of the video alone (``testing.synthetic_qa.make_choice_qa_dataset``, 32 train / 16 held-out
videos, the object 30-35 % of the frame: ``--object-radius``, ``--travel``). Per seed: the tiny Qwen2.5-VL is
trained with cross-entropy on the letter answers (stock ``sft``, full fine-tuning, lr 3e-3, batch ``--xe-batch``,
``--xe-epochs``: 5 x 8 = 40 steps leave it above chance and below the ceiling), then ``stage: scst`` from that XE
model with ``scst_rewards: option_accuracy`` (``grpo``, K 8, temperature 0.5, one answer token, lr 1e-3,
``--epochs`` 6; that seed). ``eval_on_start`` scores the XE model's held-out greedy answers inside the SCST run and
``do_eval`` the SCST model's (``eval_reward_option_accuracy``: share of the 16 held-out questions answered with the
right letter). Also per run: the sampled training accuracy (``scst/rewards/option_accuracy/mean``) and the mean
std of the reward over the K samples of a video (``scst/reward_std``; 0 = no advantage), and the held-out answers.

Other settings tried (``bench/results/scst_choice_qa.json``, ``tries``): the default small object (13-18 % of the
frame), which the tiny model never learns to see from letter answers (``--object-radius 0.13,0.18 --travel 0.4``);
``--answer-style reasoned`` (``A green circle. Answer: B``); ``--start-model``: start the XE from another model,
e.g. a caption XE model of ``bench/scst_learning.py``.

    python bench/scst_choice_qa.py [--seeds 1,2,3,4,5,6] [--variants grpo] [--answer-style letter]
                                   [--object-radius 0.3,0.35] [--travel 0.2] [--xe-epochs 5] [--xe-batch 4]
                                   [--train-per-class 8] [--epochs 6] [--workdir DIR] [key=value ...]
JSON in ``bench/results/scst_choice_qa.json``; exit status 1 unless held-out accuracy rose in every run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, HERE)

from scst_preference import VARIANTS, _value, run_cli, scst_config, xe_config  # noqa: E402


# the SCST settings of every run (docs/stages/scst.md, "Multiple-choice video QA"); key=value overrides replace them
SCST = dict(scst_num_samples=8, scst_temperature=0.5, scst_top_p=1.0, learning_rate=1e-3)


def accuracies(out: str) -> tuple[float, float]:
    r"""Held-out greedy accuracy of the start (``eval_on_start``) and of the end (``do_eval``) of an SCST run."""
    with open(os.path.join(out, "trainer_state.json"), encoding="utf-8") as f:
        logs = json.load(f)["log_history"]
    start = [e["eval_reward_option_accuracy"] for e in logs if "eval_reward_option_accuracy" in e][0]
    with open(os.path.join(out, "eval_results.json"), encoding="utf-8") as f:
        return start, json.load(f)["eval_reward_option_accuracy"]


def train_curve(out: str) -> list[float]:
    with open(os.path.join(out, "trainer_state.json"), encoding="utf-8") as f:
        logs = json.load(f)["log_history"]
    return [round(e["scst/rewards/option_accuracy/mean"], 3) for e in logs if "scst/rewards/option_accuracy/mean" in e]


def log_curve(out: str, key: str) -> list[float]:
    with open(os.path.join(out, "trainer_state.json"), encoding="utf-8") as f:
        logs = json.load(f)["log_history"]
    return [round(e[key], 3) for e in logs if key in e]


def held_out_answers(out: str) -> list[str]:
    r"""The SCST model's held-out greedy answers (``eval_captions.jsonl`` of ``do_eval``)."""
    with open(os.path.join(out, "eval_captions.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["caption"] for line in f if line.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3,4,5,6")
    parser.add_argument("--variants", default="grpo")
    parser.add_argument("--answer-style", default="letter", choices=("letter", "reasoned"))
    parser.add_argument("--xe-epochs", type=float, default=5.0)
    parser.add_argument("--xe-batch", type=int, default=4)
    parser.add_argument("--train-per-class", type=int, default=8)
    parser.add_argument("--object-radius", default="0.3,0.35", help="object radius range, fractions of the frame")
    parser.add_argument("--travel", type=float, default=0.2, help="object travel per moving axis, fraction")
    parser.add_argument(
        "--start-model",
        default=None,
        help="XE starts from this model, `{seed}` replaced by the seed (default: the tiny random model)",
    )
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "scst_choice_qa.json"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides of every SCST run")
    args = parser.parse_args()

    from llamafactory_video.testing.synthetic_qa import make_choice_qa_dataset
    from llamafactory_video.testing.tiny_model import build_tiny_model

    workdir = args.workdir or tempfile.mkdtemp(prefix="scst_choice_qa_")
    os.makedirs(workdir, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false")
    model = os.path.join(workdir, "tiny-qwen2_5-vl")
    if args.start_model is None and not os.path.isfile(os.path.join(model, "config.json")):
        build_tiny_model(model, arch="qwen2_5_vl")
    radius = tuple(float(r) for r in args.object_radius.split(","))
    data_tag = f"{args.answer_style}_{args.train_per_class}_r{radius[0]:g}-{radius[1]:g}_t{args.travel:g}"
    data = make_choice_qa_dataset(
        os.path.join(workdir, f"data_{data_tag}"),
        train_per_class=args.train_per_class,
        answer_style=args.answer_style,
        object_radius=radius,
        travel=args.travel,
    )
    overrides = {key: _value(value) for key, value in (part.split("=", 1) for part in args.overrides)}
    # the letter answer is one token: a longer sample only adds tokens (the end of turn after a wrong letter) that
    # the mostly negative advantages push down, and the answers then run on past the letter
    length = 16 if args.answer_style == "reasoned" else 1
    common = dict(SCST, scst_max_new_tokens=length, max_new_tokens=length, eval_on_start=True)
    common.update(overrides)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        xe = os.path.join(
            workdir, f"xe_{data_tag}_{args.xe_epochs:g}b{args.xe_batch}_seed{seed}"
        )
        if not os.path.isfile(os.path.join(xe, "config.json")):
            start = args.start_model.format(seed=seed) if args.start_model else model
            config = dict(xe_config(start, data, xe), num_train_epochs=args.xe_epochs, seed=seed,
                          per_device_train_batch_size=args.xe_batch)
            run_cli(config, workdir, os.path.basename(xe), env)
        for variant in args.variants.split(","):
            name = f"{variant}_{args.answer_style}_seed{seed}"
            out = os.path.join(workdir, name)
            config = scst_config(xe, data, out, "option_accuracy", args.epochs, seed=seed, **VARIANTS[variant])
            config.update(common)
            seconds = run_cli(config, workdir, name, env)
            before, after = accuracies(out)
            row = {"variant": variant, "seed": seed, "acc_xe": before, "acc_scst": after,
                   "train_accuracy_curve": train_curve(out),
                   "reward_std_curve": log_curve(out, "scst/reward_std"),
                   "held_out_answers": held_out_answers(out), "seconds": round(seconds, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| variant | seed | held-out accuracy XE -> SCST | sampled training accuracy, first -> last window |")
    print("|---|---|---|---|")
    for r in rows:
        curve = r["train_accuracy_curve"]
        print(f"| {r['variant']} | {r['seed']} | {r['acc_xe']:.3f} -> {r['acc_scst']:.3f} | "
              f"{curve[0]:.2f} -> {curve[-1]:.2f} |")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    command = "python bench/scst_choice_qa.py " + " ".join(sys.argv[1:])
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"command": command, "answer_style": args.answer_style, "xe_epochs": args.xe_epochs,
                   "xe_batch": args.xe_batch, "train_per_class": args.train_per_class,
                   "epochs": args.epochs, "overrides": overrides, "runs": rows}, f, indent=2)
    return 0 if all(r["acc_scst"] > r["acc_xe"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
