"""`stage: scst` with rewards from the registry, through the stock llamafactory-cli on tiny models.

A hidden preference: the synthetic captions' references use five phrasings; a user reward given by import path
pays +1 when the word "slides" appears. The XE model (stock sft) almost never says it; SCST with that reward
must make the held-out greedy captions say it, with the greedy baseline (REINFORCE) and with GRPO advantages +
PPO's clipped ratio over 2 updates per batch + a KL term to a frozen copy. Margins checked over seeds and every
baseline first: `python bench/scst_preference.py` (table in docs/stages/scst.md).
"""

import os
import textwrap

import pytest

from llamafactory_video.testing.synthetic_qa import make_choice_qa_dataset
from llamafactory_video.testing.synthetic_videos import word_frequency, write_preference_reward

from .helpers import offline_env, read_json, read_jsonl, run_cli, video_run_keys


pytestmark = pytest.mark.e2e

WORD = "slides"
VIDEO = video_run_keys()
VARIANTS = {
    "greedy": dict(scst_baseline="greedy"),
    "grpo_ppo_kl": dict(
        scst_baseline="grpo", scst_objective="ppo_clip", scst_updates_per_batch=2, scst_kl_coef=0.02
    ),
}


def scst_config(model_dir, data, out, reward, **overrides):
    config = dict(
        VIDEO,
        model_name_or_path=model_dir,
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
        num_train_epochs=1,
        lr_scheduler_type="constant",
        do_sample=False,
        max_new_tokens=16,
    )
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def preference(tiny_qwen25vl, caption_data, tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("scst_rewards"))
    xe = os.path.join(workdir, "xe")
    run_cli(
        dict(
            VIDEO,
            model_name_or_path=tiny_qwen25vl,
            stage="sft",
            do_train=True,
            finetuning_type="full",
            dataset_dir=caption_data["output_dir"],
            dataset=caption_data["train_sft_dataset"],
            output_dir=xe,
            logging_steps=10,
            per_device_train_batch_size=8,
            learning_rate=3e-3,
            num_train_epochs=2,
            lr_scheduler_type="constant",
        ),
        workdir,
        "xe",
    )
    rewards_dir = os.path.join(workdir, "rewards")
    reward = write_preference_reward(rewards_dir, WORD)
    env = offline_env(PYTHONPATH=os.pathsep.join(filter(None, [rewards_dir, os.environ.get("PYTHONPATH")])))
    before = os.path.join(workdir, "before")
    run_cli(scst_config(xe, caption_data, before, reward, do_train=False), workdir, "before", env=env)
    return {"workdir": workdir, "xe": xe, "reward": reward, "env": env, "before": before}


def greedy_captions(out):
    return [row["caption"] for row in read_jsonl(os.path.join(out, "eval_captions.jsonl"))]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_user_reward_by_import_path_is_learned(preference, caption_data, variant):
    workdir = preference["workdir"]
    out = os.path.join(workdir, variant)
    config = scst_config(preference["xe"], caption_data, out, preference["reward"], **VARIANTS[variant])
    run_cli(config, workdir, variant, env=preference["env"])

    # the held-out reward (greedy captions, scored by the user's function) and the word's frequency both rise
    before = read_json(os.path.join(preference["before"], "eval_results.json"))["eval_reward_likes_word"]
    after = read_json(os.path.join(out, "eval_results.json"))["eval_reward_likes_word"]
    freq_before = word_frequency(greedy_captions(preference["before"]), WORD)
    freq_after = word_frequency(greedy_captions(out), WORD)
    assert before == pytest.approx(freq_before) and after == pytest.approx(freq_after)
    assert freq_before <= 0.25 and freq_after >= freq_before + 0.5, (freq_before, freq_after)

    logs = [e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "loss" in e]
    assert all("scst/rewards/likes_word/mean" in e and "scst/rewards/likes_word/std" in e for e in logs)
    if variant == "grpo_ppo_kl":
        assert len(logs) == 8  # 32 videos / batch 4 = 8 batches, each used for 2 updates, logged every 2 steps
        assert all("scst/clip_fraction" in e and "scst/kl" in e for e in logs)
        assert "scst/baseline_reward" not in logs[0]
    else:
        assert "scst/frac_identical_to_baseline" in logs[0]


def test_unknown_reward_is_stopped_at_parse_with_the_builtins_listed(caption_data, tiny_qwen25vl, tmp_path):
    config = scst_config(tiny_qwen25vl, caption_data, str(tmp_path / "out"), "cider_d:0.5,cidr_d:0.5")
    proc = run_cli(config, str(tmp_path), "bad_reward", expect_ok=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "unknown reward `cidr_d`" in log and "cider_d, bleu_1, bleu_2" in log and "option_accuracy" in log
    assert not os.path.isdir(str(tmp_path / "out"))  # nothing trained


QA_CHECKS = """
def answer_aligned(completions, references, answer=None, category=None, sample_keys=None, **columns):
    # the dataset's `answer` column reaches the rewards, one value per completion, aligned with its sample
    assert answer is not None and len(answer) == len(completions) == len(sample_keys) == len(category)
    return [1.0 if a in "ABCD" and a == refs[0] else 0.0 for a, refs in zip(answer, references)]
"""


def test_video_qa_answer_column_reaches_the_option_reward(tiny_qwen25vl, tmp_path):
    data = make_choice_qa_dataset(str(tmp_path / "qa"), train_per_class=2, test_per_class=1)
    (tmp_path / "rewards").mkdir()
    (tmp_path / "rewards" / "qa_checks.py").write_text(textwrap.dedent(QA_CHECKS), encoding="utf-8")
    paths = [str(tmp_path / "rewards"), os.environ.get("PYTHONPATH")]
    env = offline_env(PYTHONPATH=os.pathsep.join(filter(None, paths)))
    out = str(tmp_path / "out")
    config = scst_config(
        tiny_qwen25vl,
        data,
        out,
        "option_accuracy:1.0,format:0.0,qa_checks:answer_aligned:0.0",
        scst_baseline="grpo",
        scst_max_new_tokens=4,
        max_new_tokens=4,
        max_steps=2,
        logging_steps=1,
    )
    run_cli(config, str(tmp_path), "qa", env=env)
    logs = [e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "loss" in e]
    assert len(logs) == 2 and all(e["scst/rewards/answer_aligned/mean"] == 1.0 for e in logs)
    assert all("scst/rewards/option_accuracy/mean" in e and "scst/rewards/format/mean" in e for e in logs)
    results = read_json(os.path.join(out, "eval_results.json"))
    assert results["eval_reward_answer_aligned"] == 1.0 and 0.0 <= results["eval_reward_option_accuracy"] <= 1.0
    rows = read_jsonl(os.path.join(out, "eval_captions.jsonl"))
    assert len(rows) == data["num_test"] and all(r["answer"] == r["references"][0] for r in rows)
