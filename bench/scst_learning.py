#!/usr/bin/env python
"""Does `stage: scst` beat its XE starting point on held-out greedy CIDEr-D, run after run?

Per (task variant, seed): the tiny Qwen2.5-VL is trained with cross-entropy (stock ``sft``, full fine-tuning,
``seed``), then ``stage: scst`` runs from that XE model with a named recipe through the stock
``llamafactory-cli``. ``eval_on_start`` scores the held-out greedy captions of the XE model inside the same run
(``eval_cider`` at step 0), ``do_eval`` scores them after SCST. Also reported: the greedy (baseline) reward on
the training batches at the first and last logging window, when the recipe decodes one.

Task variants: ``4cls`` (4 classes, 8 training / 4 held-out videos per class, data seed 1) and ``3cls``
(the first 3 of those classes, 8 / 4, data seed 2: other clips), both from an XE model trained 6 epochs;
``4cls_xe2`` is ``4cls`` after 2 XE epochs (the tiny model is then video-blind: one caption for every video).
Recipes: ``grpo_6ep`` (group-normalised advantages, lr 1e-4, 6 epochs, held-out score after each epoch:
``examples/demo/scst_tiny.yaml``; ``grpo_6ep_keep`` adds ``scst_keep_best: train_reward``),
``grpo_lr1e-4`` (the same for 2 epochs, the demo recipe before),
``grpo`` and ``mean`` (lr 3e-4), ``greedy`` (lr 3e-4), ``old_demo`` (an earlier demo recipe: greedy baseline,
lr 1e-4, 2 epochs).

    python bench/scst_learning.py [--seeds 1,2,3,4] [--variants 4cls,3cls] [--recipes grpo_6ep,grpo_lr1e-4,mean]
                                  [--output FILE] [key=value ...]
Markdown table on stdout, JSON in ``bench/results/scst_learning.json``. Exit status 1 when a run fails or a
``grpo_6ep`` run ends below its XE model.
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

from scst_preference import VIDEO, _value, run_cli  # noqa: E402


TASKS = {  # xe_epochs: epochs of the XE run (2 leaves the tiny model video-blind: one caption for every video)
    "4cls": dict(num_classes=4, train_per_class=8, test_per_class=4, seed=1, xe_epochs=6),
    "3cls": dict(num_classes=3, train_per_class=8, test_per_class=4, seed=2, xe_epochs=6),
    "4cls_xe2": dict(num_classes=4, train_per_class=8, test_per_class=4, seed=1, xe_epochs=2),
}
RECIPES = {
    "old_demo": dict(scst_baseline="greedy", learning_rate=1e-4, num_train_epochs=2),
    "grpo": dict(scst_baseline="grpo", learning_rate=3e-4, num_train_epochs=2),
    "grpo_lr1e-4": dict(scst_baseline="grpo", learning_rate=1e-4, num_train_epochs=2),
    "mean": dict(scst_baseline="mean", learning_rate=3e-4, num_train_epochs=2),
    "greedy": dict(scst_baseline="greedy", learning_rate=3e-4, num_train_epochs=2),
    # the demo recipe now: grpo_lr1e-4 for 6 epochs (the held-out score after each epoch: eval_strategy=epoch)
    "grpo_6ep": dict(scst_baseline="grpo", learning_rate=1e-4, num_train_epochs=6, eval_strategy="epoch"),
    # + the held-out-free keep-best (greedy TRAINING reward at the start and after each epoch)
    "grpo_6ep_keep": dict(
        scst_baseline="grpo", learning_rate=1e-4, num_train_epochs=6, eval_strategy="epoch",
        scst_keep_best="train_reward", scst_keep_best_samples=64,
    ),
}
GATED = ("grpo_6ep",)  # recipes that must never end below XE


def xe_config(model: str, data: dict, out: str, seed: int, epochs: float = 2) -> dict:
    return dict(
        VIDEO,
        model_name_or_path=model,
        stage="sft",
        do_train=True,
        finetuning_type="full",
        dataset_dir=data["output_dir"],
        dataset=data["train_sft_dataset"],
        output_dir=out,
        logging_steps=10,
        per_device_train_batch_size=8,
        learning_rate=3e-3,
        num_train_epochs=epochs,
        lr_scheduler_type="constant",
        seed=seed,
    )


def scst_config(model: str, data: dict, out: str, seed: int, **overrides) -> dict:
    config = dict(
        VIDEO,
        model_name_or_path=model,
        stage="scst",
        do_train=True,
        do_eval=True,
        eval_on_start=True,
        finetuning_type="full",
        scst_num_samples=4,
        scst_max_new_tokens=16,
        scst_reward_weights="cider_d=1.0",
        dataset_dir=data["output_dir"],
        dataset=data["train_dataset"],
        eval_dataset=data["test_dataset"],
        output_dir=out,
        logging_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=16,
        lr_scheduler_type="constant",
        do_sample=False,
        max_new_tokens=16,
        seed=seed,
    )
    config.update(overrides)
    return config


def summarise(out: str) -> dict:
    with open(os.path.join(out, "trainer_state.json"), encoding="utf-8") as f:
        logs = json.load(f)["log_history"]
    evals = [e["eval_cider"] for e in logs if "eval_cider" in e]
    train = [e for e in logs if "scst/reward_mean" in e]
    with open(os.path.join(out, "eval_results.json"), encoding="utf-8") as f:
        after = json.load(f)["eval_cider"]  # the final do_eval (trainer_state.json is written before it)
    row = {"cider_xe": evals[0], "cider_scst": after, "cider_by_epoch": [round(v, 3) for v in evals]}
    kept = [e for e in logs if "scst/keep_best/kept_epoch" in e]
    if kept:  # scst_keep_best: the greedy training reward at each check and the epoch whose policy was kept
        row["keep_best_rewards"] = [e["scst/keep_best/reward"] for e in logs if "scst/keep_best/reward" in e]
        row["kept_epoch"] = kept[-1]["scst/keep_best/kept_epoch"]
    row["reward_first"], row["reward_last"] = train[0]["scst/reward_mean"], train[-1]["scst/reward_mean"]
    if "scst/frac_identical_to_baseline" in train[0]:  # a decoded (greedy / beam) baseline
        row["greedy_first"], row["greedy_last"] = train[0]["scst/baseline_reward"], train[-1]["scst/baseline_reward"]
        row["greedy_min"] = min(e["scst/baseline_reward"] for e in train)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3,4")
    parser.add_argument("--variants", default="4cls,3cls")
    parser.add_argument("--recipes", default="grpo_6ep")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "scst_learning.json"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides of every SCST run")
    args = parser.parse_args()

    from llamafactory_video.testing.synthetic_videos import make_caption_dataset
    from llamafactory_video.testing.tiny_model import build_tiny_model

    workdir = args.workdir or tempfile.mkdtemp(prefix="scst_learning_")
    os.makedirs(workdir, exist_ok=True)
    offline = dict(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", **offline)
    model = os.path.join(workdir, "tiny-qwen2_5-vl")
    if not os.path.isfile(os.path.join(model, "config.json")):
        build_tiny_model(model, arch="qwen2_5_vl")
    overrides = {key: _value(value) for key, value in (part.split("=", 1) for part in args.overrides)}

    rows, failed = [], False
    for variant in args.variants.split(","):
        task = dict(TASKS[variant])
        xe_epochs = task.pop("xe_epochs", 2)
        data = make_caption_dataset(os.path.join(workdir, f"data_{variant}"), **task)
        for seed in [int(s) for s in args.seeds.split(",")]:
            xe = os.path.join(workdir, f"xe_{variant}_seed{seed}")
            if not os.path.isfile(os.path.join(xe, "config.json")):
                run_cli(xe_config(model, data, xe, seed, xe_epochs), workdir, f"xe_{variant}_seed{seed}", env)
            for recipe in args.recipes.split(","):
                name = f"{recipe}_{variant}_seed{seed}"
                out = os.path.join(workdir, name)
                config = scst_config(xe, data, out, seed, **RECIPES[recipe])
                config.update(overrides)
                try:
                    seconds = run_cli(config, workdir, name, env)
                except RuntimeError as err:
                    print(err, flush=True)
                    rows.append({"recipe": recipe, "variant": variant, "seed": seed, "error": str(err)[-500:]})
                    failed = True
                    continue
                row = {"recipe": recipe, "variant": variant, "seed": seed, **summarise(out), "seconds": round(seconds)}
                failed |= recipe in GATED and row["cider_scst"] < row["cider_xe"]
                rows.append(row)
                print(json.dumps(row), flush=True)

    print("\n| recipe | task | seed | held-out CIDEr-D XE -> SCST | change | greedy train reward 1st -> last (min) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['recipe']} | {r['variant']} | {r['seed']} | FAILED | | |")
            continue
        greedy = "-"
        if "greedy_first" in r:
            greedy = f"{r['greedy_first']:.2f} -> {r['greedy_last']:.2f} ({r['greedy_min']:.2f})"
        change = 100.0 * (r["cider_scst"] - r["cider_xe"]) / max(r["cider_xe"], 1e-9)
        print(
            f"| {r['recipe']} | {r['variant']} | {r['seed']} | {r['cider_xe']:.3f} -> {r['cider_scst']:.3f} | "
            f"{change:+.1f} % | {greedy} |"
        )
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"tasks": TASKS, "recipes": RECIPES, "overrides": overrides, "runs": rows}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
