#!/usr/bin/env python
"""Does `stage: scst` learn a user reward given by import path, with every baseline and objective?

A hidden preference: the synthetic captioning task's references use five phrasings ("moves", "is moving",
"slides", "goes", "travels"); a user reward module (``testing.synthetic_videos.write_preference_reward``) pays
+1 when the chosen ``--word`` appears. The tiny Qwen2.5-VL is first trained with cross-entropy (stock ``sft``,
full fine-tuning), then ``stage: scst`` runs with ``scst_rewards: hidden_preference:likes_word`` through the
stock ``llamafactory-cli`` once per (baseline / objective, seed). Reported per run: the reward's first and last
logged mean (``scst/rewards/likes_word/mean``) and the word's frequency in held-out greedy captions before
(the XE model) and after. Markdown table on stdout, JSON in ``bench/results/scst_preference.json``.

    python bench/scst_preference.py [--seeds 1,2,3] [--variants greedy,grpo_ppo_kl,beam,mean,grpo,ppo]
                                    [--word slides] [--epochs 1] [--output FILE] [key=value ...]
Exit status 1 when a run fails or does not raise the held-out frequency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))

VIDEO = dict(
    video_maxlen=8,
    video_fps=2.0,
    video_max_pixels=12544,
    template="qwen2_vl",
    trust_remote_code=True,
    cutoff_len=512,
    preprocessing_num_workers=1,
    overwrite_output_dir=True,
    overwrite_cache=True,
    report_to="none",
    save_strategy="no",
)
VARIANTS = {
    "greedy": dict(scst_baseline="greedy"),
    "beam": dict(scst_baseline="beam", scst_beam_width=2),
    "mean": dict(scst_baseline="mean"),
    "grpo": dict(scst_baseline="grpo"),
    "ppo": dict(scst_baseline="grpo", scst_objective="ppo_clip", scst_updates_per_batch=2),
    "kl": dict(scst_baseline="grpo", scst_kl_coef=0.05),
    # the e2e test's second variant (tests/e2e/test_scst_rewards_cli.py)
    "grpo_ppo_kl": dict(
        scst_baseline="grpo", scst_objective="ppo_clip", scst_updates_per_batch=2, scst_kl_coef=0.02
    ),
}


def xe_config(model: str, data: dict, out: str) -> dict:
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
        num_train_epochs=2,
        lr_scheduler_type="constant",
    )


def scst_config(model: str, data: dict, out: str, reward: str, epochs: float, **overrides) -> dict:
    config = dict(
        VIDEO,
        model_name_or_path=model,
        stage="scst",
        do_train=True,
        do_eval=True,
        finetuning_type="full",
        scst_num_samples=4,
        scst_max_new_tokens=16,
        scst_rewards=reward,
        dataset_dir=data["output_dir"],
        dataset=data["train_dataset"],
        eval_dataset=data["test_dataset"],
        output_dir=out,
        logging_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=16,
        learning_rate=3e-4,
        num_train_epochs=epochs,
        lr_scheduler_type="constant",
        do_sample=False,
        max_new_tokens=16,
    )
    config.update(overrides)
    return config


def run_cli(config: dict, workdir: str, name: str, env: dict) -> float:
    import yaml

    path = os.path.join(workdir, f"{name}.yaml")
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)
    cli = os.path.join(os.path.dirname(sys.executable), "llamafactory-cli")
    start = time.time()
    proc = subprocess.run([cli, "train", path], cwd=workdir, env=env, capture_output=True, text=True)
    with open(os.path.join(workdir, f"{name}.log"), "w", encoding="utf-8") as f:
        f.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return time.time() - start


def greedy_frequency(out: str, word: str) -> float:
    from llamafactory_video.testing.synthetic_videos import word_frequency

    with open(os.path.join(out, "eval_captions.jsonl"), encoding="utf-8") as f:
        captions = [json.loads(line)["caption"] for line in f if line.strip()]
    return word_frequency(captions, word)


def reward_curve(out: str, name: str) -> list[float]:
    with open(os.path.join(out, "trainer_state.json"), encoding="utf-8") as f:
        logs = json.load(f)["log_history"]
    return [e[f"scst/rewards/{name}/mean"] for e in logs if f"scst/rewards/{name}/mean" in e]


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--variants", default="greedy,grpo_ppo_kl,beam,mean,grpo,ppo")
    parser.add_argument("--word", default="slides")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "scst_preference.json"))
    parser.add_argument("overrides", nargs="*", help="key=value overrides of every SCST run")
    args = parser.parse_args()

    from llamafactory_video.testing.synthetic_videos import make_caption_dataset, write_preference_reward
    from llamafactory_video.testing.tiny_model import build_tiny_model

    workdir = args.workdir or tempfile.mkdtemp(prefix="scst_preference_")
    os.makedirs(workdir, exist_ok=True)
    reward = write_preference_reward(os.path.join(workdir, "rewards"), args.word)
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(filter(None, [os.path.join(workdir, "rewards"), os.environ.get("PYTHONPATH")])),
    )
    model = build_tiny_model(os.path.join(workdir, "tiny-qwen2_5-vl"), arch="qwen2_5_vl")
    data = make_caption_dataset(os.path.join(workdir, "data"), num_classes=4, train_per_class=8, test_per_class=4)
    xe = os.path.join(workdir, "xe")
    if not os.path.isfile(os.path.join(xe, "config.json")):
        run_cli(xe_config(model, data, xe), workdir, "xe", env)
    before_out = os.path.join(workdir, "before")
    overrides = {key: _value(value) for key, value in (part.split("=", 1) for part in args.overrides)}
    run_cli(
        scst_config(xe, data, before_out, reward, args.epochs, do_train=False, **overrides), workdir, "before", env
    )
    before = greedy_frequency(before_out, args.word)
    print(f"held-out greedy captions with {args.word!r} after XE: {before:.3f}", flush=True)

    rows, failed = [], False
    for variant in args.variants.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            out = os.path.join(workdir, f"{variant}_seed{seed}")
            config = scst_config(xe, data, out, reward, args.epochs, seed=seed, **VARIANTS[variant])
            config.update(overrides)
            try:
                seconds = run_cli(config, workdir, f"{variant}_seed{seed}", env)
            except RuntimeError as err:
                print(err, flush=True)
                rows.append({"variant": variant, "seed": seed, "error": str(err)[-500:]})
                failed = True
                continue
            curve = reward_curve(out, "likes_word")
            after = greedy_frequency(out, args.word)
            row = {
                "variant": variant,
                "seed": seed,
                "reward_first": curve[0],
                "reward_last": curve[-1],
                "freq_before": before,
                "freq_after": after,
                "seconds": round(seconds, 1),
            }
            failed |= after <= before
            rows.append(row)
            print(json.dumps(row), flush=True)

    print("\n| variant | seed | reward first -> last log | held-out greedy freq before -> after | s |")
    print("|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | {r['seed']} | FAILED | | |")
        else:
            print(
                f"| {r['variant']} | {r['seed']} | {r['reward_first']:.2f} -> {r['reward_last']:.2f} | "
                f"{r['freq_before']:.2f} -> {r['freq_after']:.2f} | {r['seconds']} |"
            )
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump({"word": args.word, "epochs": args.epochs, "overrides": overrides, "runs": rows}, f, indent=2)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
