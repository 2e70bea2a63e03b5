"""Rewards as named callables with weights (rewards/registry.py, rewards/builtin.py) and their parse-time checks."""

import sys
import textwrap

import numpy as np
import pytest

from llamafactory_video.metrics.captions import bleu, rouge_l, tokenize
from llamafactory_video.rewards import builtin
from llamafactory_video.rewards.cider import CiderDScorer
from llamafactory_video.rewards.registry import (
    BUILTIN_REWARDS,
    RewardError,
    build_reward_set,
    check_reward_spec,
    parse_reward_spec,
)


REFS = {
    "v#0": ["a red square moves right", "the red square goes right"],
    "v#1": ["a green circle moves left", "the green circle goes left"],
}


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        textwrap.dedent(
            """
            def likes_red(completions, references, **columns):
                return [1.0 if "red" in c.split() else 0.0 for c in completions]

            def explodes(completions, references, **columns):
                if any("boom" in c for c in completions):
                    raise KeyError("boom")
                return [0.0] * len(completions)

            def nan_on_blue(completions, references, **columns):
                return [float("nan") if "blue" in c else 1.0 for c in completions]

            def too_short(completions, references, **columns):
                return [1.0]

            def echo_category(completions, references, category=None, sample_keys=None, **columns):
                return [float(c == "sports") for c in category]

            not_callable = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_rewards"
    sys.modules.pop("my_rewards", None)


def test_parse_reward_spec_weights_and_import_paths():
    assert parse_reward_spec("cider_d:0.7, bleu_4:0.3,length:1.0") == [
        ("cider_d", 0.7),
        ("bleu_4", 0.3),
        ("length", 1.0),
    ]
    assert parse_reward_spec("my.mod:fn,my.mod:other:0.5,rouge_l") == [
        ("my.mod:fn", 1.0),
        ("my.mod:other", 0.5),
        ("rouge_l", 1.0),
    ]
    with pytest.raises(ValueError, match="twice"):
        parse_reward_spec("cider_d:1,cider_d:2")
    with pytest.raises(ValueError, match="non-zero"):
        parse_reward_spec("cider_d:0")


def test_check_reward_spec_names_the_entry_and_lists_builtins(user_module):
    with pytest.raises(ValueError, match="unknown reward `cidr`.*cider_d, bleu_1.*option_accuracy"):
        check_reward_spec("cidr:1.0")
    with pytest.raises(ValueError, match="cannot import module `no_such_mod`"):
        check_reward_spec("no_such_mod:fn")
    with pytest.raises(ValueError, match="has no `missing`"):
        check_reward_spec(f"{user_module}:missing")
    with pytest.raises(ValueError, match="not callable"):
        check_reward_spec(f"{user_module}:not_callable")
    assert check_reward_spec(f"cider_d:0.5,{user_module}:likes_red:2") == [
        ("cider_d", 0.5),
        (f"{user_module}:likes_red", 2.0),
    ]


def test_meteor_without_java_is_a_parse_error(monkeypatch):
    import llamafactory_video.metrics.captions as captions

    monkeypatch.setattr(captions, "meteor_available", lambda: "METEOR needs Java ('java' is not on PATH)")
    with pytest.raises(ValueError, match="meteor.*not available.*Java"):
        check_reward_spec("cider_d:1,meteor:0.5")


def test_builtin_caption_rewards_match_the_evaluation_metrics():
    captions = ["A red square moves right.", "a green circle moves right", "nothing"]
    refs = [REFS["v#0"], REFS["v#1"], REFS["v#1"]]
    gts = {i: [tokenize(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [tokenize(c)] for i, c in enumerate(captions)}
    for n in (1, 2, 3, 4):
        assert np.allclose(builtin.bleu_n(captions, refs, n), bleu(gts, res, 4)[1][n - 1])
    assert np.allclose(builtin.rouge_l_reward(captions, refs), rouge_l(gts, res)[1])
    assert builtin.bleu_n(captions, refs, 4)[0] == pytest.approx(1.0)


def test_length_exact_match_option_and_format_against_hand_values():
    # the seed's -0.01 * |len - 32|
    assert builtin.length_reward(["one two three", ""], target=32, slope=0.01).tolist() == pytest.approx(
        [-0.29, -0.32]
    )
    matched = builtin.exact_match(["The Cat.", "<answer> a cat </answer>", "dog"], [["cat"], ["cat"], ["cat"]])
    assert matched.tolist() == [1.0, 1.0, 0.0]
    completions = ["B", "(C) a dog", "The answer is D.", "A: the cat", "I think <answer>B</answer>", "none", "b"]
    refs = [["B"], ["C"], ["B"], ["A"], ["B"], ["A"], ["B"]]
    assert builtin.option_accuracy(completions, refs).tolist() == [1, 1, 0, 1, 1, 0, 0]
    # an article is not an answer; a letter marked as an option is
    assert [builtin.chosen_option(c) for c in ("A red square moves.", "A. red", "Answer: C", "(D)", "E")] == [
        None,
        "A",
        "C",
        "D",
        "E",
    ]
    # the `answer` column, when present, wins over the references
    assert builtin.option_accuracy(["C"], [["B"]], answer=["(C)"]).tolist() == [1.0]
    assert builtin.format_reward(["<think>x</think> <answer>B</answer>", "B"]).tolist() == [1.0, 0.0]
    assert builtin.format_reward(["Answer: B", "B"], pattern=r"Answer: [A-E]").tolist() == [1.0, 0.0]


def test_reward_set_weights_terms_and_logs_each_alone(user_module):
    scorer = CiderDScorer(REFS, tokenize=tokenize)
    rewards = build_reward_set(
        [("cider_d", 0.7), ("bleu_4", 0.3), ("length", 1.0), (f"{user_module}:likes_red", 2.0)],
        scorer=scorer,
        length_target=5,
        length_slope=0.01,
    )
    captions = ["a red square moves right", "a green circle moves right"]
    keys = ["v#0", "v#1"]
    total, parts = rewards(captions, keys, [REFS[k] for k in keys], {"category": ["x", "y"]})
    assert rewards.names == ["cider_d", "bleu_4", "length", "likes_red"]
    assert set(parts) == {"cider_d", "bleu_4", "length", "likes_red"}
    cider = scorer.score(captions, keys)
    bleu4 = builtin.bleu_n(captions, [REFS[k] for k in keys], 4)
    expected = 0.7 * cider + 0.3 * bleu4 + np.array([0.0, 0.0]) + 2.0 * np.array([1.0, 0.0])
    assert np.allclose(total, expected)
    # the monitored cider_d / bleu_4 are there even when no term uses them
    _, parts = build_reward_set([("exact_match", 1.0)], scorer=scorer)(captions, keys, [REFS[k] for k in keys])
    assert set(parts) == {"exact_match", "cider_d", "bleu_4"}


def test_user_reward_gets_the_sample_columns(user_module):
    rewards = build_reward_set([(f"{user_module}:echo_category", 1.0)])
    total, _ = rewards(["a", "b"], ["k#0", "k#1"], [["a"], ["b"]], {"category": ["sports", "music"]})
    assert total.tolist() == [1.0, 0.0]


def test_bad_rewards_name_the_reward_sample_and_completion(user_module):
    refs = [["x"], ["x"], ["x"]]
    keys = ["d#0", "d#1", "d#2"]
    with pytest.raises(RewardError, match=r"`my_rewards:explodes` raised KeyError.*sample `d#1`.*'it went boom'"):
        build_reward_set([(f"{user_module}:explodes", 1.0)])(["fine", "it went boom", "fine"], keys, refs)
    with pytest.raises(RewardError, match=r"`my_rewards:nan_on_blue` is not finite.*sample `d#2`.*'a blue sky'"):
        build_reward_set([(f"{user_module}:nan_on_blue", 1.0)])(["a", "b", "a blue sky"], keys, refs)
    with pytest.raises(RewardError, match=r"`my_rewards:too_short` returned 1 values for 3 completions.*d#0"):
        build_reward_set([(f"{user_module}:too_short", 1.0)])(["a", "b", "c"], keys, refs)


def test_stage_keys_parse_and_keep_the_older_keys(user_module):
    from llamafactory_video.hparams import ScstArguments

    args = ScstArguments(scst_reward_weights="cider_d=0.7,bleu_4=0.3", scst_length_penalty=0.01)
    assert args.scst_reward_terms() == ([("cider_d", 0.7), ("bleu_4", 0.3), ("length", 1.0)], 0.01)
    args = ScstArguments(scst_rewards=f"cider_d:0.7,{user_module}:likes_red:0.3", scst_length_slope=0.02)
    assert args.scst_reward_terms() == ([("cider_d", 0.7), (f"{user_module}:likes_red", 0.3)], 0.02)
    for bad, match in (
        (dict(scst_rewards="cider_d:1", scst_length_penalty=0.01), "replaces"),
        (dict(scst_rewards="bogus"), "unknown reward `bogus`"),
        (dict(scst_objective="ppo"), "Invalid value `ppo` for `scst_objective`"),
        (dict(scst_updates_per_batch=2), "ppo_clip"),
        (dict(scst_baseline="grpo", scst_num_samples=1), "grpo"),
        (dict(scst_kl_reference="ref"), "Invalid value `ref` for `scst_kl_reference`"),
        (dict(scst_kl_coef=-1.0), "scst_kl_coef"),
    ):
        with pytest.raises(ValueError, match=match):
            ScstArguments(**bad).validate()
    ScstArguments(scst_objective="ppo_clip", scst_updates_per_batch=2, scst_baseline="grpo").validate()
    assert set(BUILTIN_REWARDS) >= {"cider_d", "bleu_4", "rouge_l", "meteor", "length", "option_accuracy", "format"}


def test_docs_list_every_scst_key_and_builtin_reward():
    import dataclasses
    import os

    from llamafactory_video.hparams import ScstArguments

    docs = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "stages", "scst.md")
    with open(docs, encoding="utf-8") as f:
        text = f.read()
    missing = [f.name for f in dataclasses.fields(ScstArguments) if f"`{f.name}`" not in text]
    missing += [name for name in BUILTIN_REWARDS if f"`{name}`" not in text and name not in ("bleu_2", "bleu_3")]
    assert not missing, f"docs/stages/scst.md does not list {missing}"
    for metric in ("scst/rewards/<name>/mean", "scst/clip_fraction", "scst/kl", "eval_reward_<name>"):
        assert metric in text, metric
