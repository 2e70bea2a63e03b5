"""Degeneration metrics against naive references, and the window's threshold stop."""

import random

import pytest

from llamafactory_video.callbacks.degeneration import DegenerationStop, DegenerationWindow, checkpoints_hint
from llamafactory_video.metrics.degeneration import (
    caption_words,
    degeneration_metrics,
    distinct_n,
    opening_message,
    repeated_ngram_share,
    top_opening,
)


VOCAB = ["people", "are", "a", "man", "is", "dancing", "on", "the", "stage", "cooking", "dog"]


def naive_words(caption):
    cleaned = "".join(ch if (ch.isascii() and ch.isalnum()) or ch == "'" else " " for ch in caption.lower())
    return cleaned.split()


def naive_distinct(captions, n):
    seen, total = [], 0
    for c in captions:
        w = naive_words(c)
        for i in range(len(w) - n + 1):
            total += 1
            if w[i : i + n] not in seen:
                seen.append(w[i : i + n])
    return len(seen) / total if total else 1.0


def naive_repeated(captions, n):
    total = repeated = 0
    for c in captions:
        w = naive_words(c)
        for i in range(len(w) - n + 1):
            total += 1
            if any(w[j : j + n] == w[i : i + n] for j in range(i)):
                repeated += 1
    return repeated / total if total else 0.0


def naive_opening(captions, n):
    best, best_count = None, 0
    for c in captions:
        w = naive_words(c)
        if len(w) < n:
            continue
        count = sum(1 for d in captions if naive_words(d)[:n] == w[:n] and len(naive_words(d)) >= n)
        if count > best_count:
            best, best_count = " ".join(w[:n]), count
    return (best_count / len(captions) if captions else 0.0), best


def random_captions(rng, count):
    out = []
    for _ in range(count):
        words = [rng.choice(VOCAB) for _ in range(rng.randint(0, 9))]
        if rng.random() < 0.4:
            words = ["People", "are"] + words
        out.append(" ".join(words) + rng.choice(["", ".", " !", ","]))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_naive_references(seed):
    rng = random.Random(seed)
    captions = random_captions(rng, rng.randint(1, 40))
    for n in (1, 2, 3):
        assert distinct_n(captions, n) == pytest.approx(naive_distinct(captions, n))
        assert repeated_ngram_share(captions, n) == pytest.approx(naive_repeated(captions, n))
    share, opening = top_opening(captions, 2)
    ref_share, ref_opening = naive_opening(captions, 2)
    assert share == pytest.approx(ref_share) and opening == ref_opening
    metrics = degeneration_metrics(captions)
    assert metrics["distinct_2"] == pytest.approx(naive_distinct(captions, 2))
    assert metrics["repeated_3gram_share"] == pytest.approx(naive_repeated(captions, 3))
    assert metrics["opening_share"] == pytest.approx(ref_share) and metrics["num_samples"] == len(captions)


def test_worked_examples():
    assert caption_words("People are dancing, on STAGE!") == ["people", "are", "dancing", "on", "stage"]
    assert repeated_ngram_share(["a man is a man is a man"], 3) == pytest.approx(3 / 6)
    assert distinct_n(["a a a a"], 1) == pytest.approx(1 / 4)
    assert distinct_n(["", "one"], 2) == 1.0 and repeated_ngram_share(["two words"], 3) == 0.0
    captions = ["people are dancing", "People are cooking.", "a dog runs", "people are here", "x"]
    assert top_opening(captions) == (pytest.approx(3 / 5), "people are")
    assert opening_message(captions) == '60% of samples start with "people are" (5 samples)'
    assert top_opening([]) == (0.0, None) and top_opening(["one", "two"]) == (0.0, None)


def test_window_logs_then_stops_naming_the_opening_and_the_checkpoints(tmp_path):
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-12").mkdir()
    window = DegenerationWindow("scst", threshold=0.6, min_samples=5)
    assert window.flush() == ({}, None)
    window.add(["people are dancing"] * 3 + ["a dog runs", "a cat sits"])
    metrics, reason = window.flush()
    assert metrics["scst/degeneration/opening_share"] == 0.6 and reason.startswith('60% of samples start with "people')
    with pytest.raises(DegenerationStop, match=r'60% of samples.*step 7.*checkpoint-12'):
        window.stop(reason, 7, str(tmp_path), "scst_degeneration_threshold")
    window.add(["people are dancing"] * 4)  # fewer than min_samples: logged, never stops
    metrics, reason = window.flush()
    assert metrics["scst/degeneration/opening_share"] == 1.0 and reason is None
    window.add(["people are dancing", "a dog runs", "a cat sits", "the man cooks", "two men talk"])
    assert window.flush()[1] is None
    assert "No checkpoint" in checkpoints_hint(str(tmp_path / "missing"))
    assert DegenerationWindow("x").flush() == ({}, None)


def test_sample_records_and_resume_truncation(tmp_path):
    import json

    import numpy as np

    from llamafactory_video.train.scst.samples import markdown_table, sample_records, truncate_after

    rewards = np.array([[1.0, 0.5], [0.2, 0.4]])
    records = sample_records(
        7, ["v0", "v1"], [["a b"], ["c d"]], ["s00", "s01", "s10", "s11"], rewards, rewards - 0.5,
        {"cider_d": [2.0, 1.0, 0.4, 0.8]}, "beam", ["g0", "g1"], [0.5, 0.5], max_videos=1,
    )
    assert records == [
        {
            "step": 7, "video": "v0", "references": ["a b"],
            "baseline": {"type": "beam", "caption": "g0", "reward": 0.5},
            "samples": [
                {"caption": "s00", "reward": 1.0, "advantage": 0.5, "cider_d": 2.0},
                {"caption": "s01", "reward": 0.5, "advantage": 0.0, "cider_d": 1.0},
            ],
        }
    ]
    mean = sample_records(3, ["v0"], [["a"]], ["s0", "s1"], np.ones((1, 2)), np.zeros((1, 2)), {}, "mean")
    assert mean[0]["baseline"] is None and [x["advantage"] for x in mean[0]["samples"]] == [0.0, 0.0]
    table = markdown_table(records)
    assert "| v0 | beam | g0 | 0.5 | |" in table and table.count("| sample |") == 2
    path = tmp_path / "scst_samples.jsonl"
    lines = [json.dumps({"step": s}) for s in (1, 2, 3)]
    path.write_text("\n".join(lines) + '\n{"step": 4, "vid')  # a torn last line (kill -9 mid-write)
    assert truncate_after(str(path), 2) == 2
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def test_xe_watch_keys_are_checked_before_training(tmp_path):
    from llamafactory.hparams import parser
    from transformers import HfArgumentParser

    from llamafactory_video.callbacks.degeneration import CaptionDegenerationCallback, watch_from_raw_args

    assert watch_from_raw_args({"stage": "sft"}) is None
    on = {"stage": "sft", "caption_degeneration_watch": "stop", "eval_strategy": "steps"}
    assert isinstance(watch_from_raw_args(on), CaptionDegenerationCallback)
    listed = ["--caption_degeneration_watch", "log", "--eval_strategy=steps", "--caption_degeneration_prompts", "3"]
    assert watch_from_raw_args(listed).prompts == 3
    with pytest.raises(ValueError, match="Invalid value `sometimes` for `caption_degeneration_watch`"):
        watch_from_raw_args(dict(on, caption_degeneration_watch="sometimes"))
    with pytest.raises(ValueError, match="never evaluates"):
        watch_from_raw_args(dict(on, eval_strategy="no"))
    with pytest.raises(ValueError, match=r"caption_degeneration_threshold.*\(0, 1\]"):
        watch_from_raw_args(dict(on, caption_degeneration_threshold=1.5))
    base = dict(model_name_or_path="m", output_dir=str(tmp_path), caption_degeneration_watch="log")
    with pytest.raises(ValueError, match="scst_degeneration_threshold"):
        HfArgumentParser(parser._TRAIN_ARGS).parse_dict(dict(base, stage="scst"))
    finetuning_args = HfArgumentParser(parser._TRAIN_ARGS).parse_dict(dict(base, stage="sft"))[3]
    assert finetuning_args.caption_degeneration_watch == "log"


def test_host_contract_stock_stage_callbacks_reach_the_trainer():
    r"""host/tuner.py appends the XE watch to ``config["callbacks"]`` before the host's ``_training_function``
    runs a stock stage: that function must take its callback list from there and the sft workflow hand it to the
    trainer."""
    import inspect

    from llamafactory.train import tuner
    from llamafactory.train.sft import workflow

    from llamafactory_video.callbacks.degeneration import CaptionDegenerationCallback
    from llamafactory_video.host.tuner import add_stock_stage_callbacks

    source = inspect.getsource(tuner._training_function.__wrapped__)
    assert 'callbacks: list[Any] = config.get("callbacks")' in source
    assert "run_sft(model_args, data_args, training_args, finetuning_args, generating_args, callbacks)" in source
    assert "callbacks=callbacks" in inspect.getsource(workflow.run_sft)
    config = {"args": {"stage": "sft", "caption_degeneration_watch": "log", "eval_strategy": "steps"}, "callbacks": []}
    add_stock_stage_callbacks(config)
    assert [type(c) for c in config["callbacks"]] == [CaptionDegenerationCallback]
    config = {"args": {"stage": "sft"}, "callbacks": []}
    add_stock_stage_callbacks(config)
    assert config["callbacks"] == []
