"""`stage: scst` sample log (scst_samples.jsonl, across a kill -9 and resume), the reporter's sample table, and the
degeneration watch (metrics logged, threshold stop) through the stock llamafactory-cli on the tiny random model."""

import importlib.util
import os

import pytest

from .helpers import kill_at_checkpoint_and_resume, read_json, read_jsonl, run_cli


pytestmark = pytest.mark.e2e
HAVE_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None  # in the `test` extra


def tensorboard_tables(directory):
    r"""``{step: markdown}`` of the ``scst/samples`` text events under ``directory`` (every run's event files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tables = {}
    for root, _, files in os.walk(directory):
        if any(f.startswith("events.out.tfevents") for f in files):
            acc = EventAccumulator(root, size_guidance={"tensors": 0})
            acc.Reload()
            if "scst/samples/text_summary" in acc.Tags()["tensors"]:
                for event in acc.Tensors("scst/samples/text_summary"):
                    tables[event.step] = event.tensor_proto.string_val[0].decode()
    return tables


def tiny_scst(model_dir, data, out, **overrides):
    config = dict(
        model_name_or_path=model_dir,
        stage="scst",
        do_train=True,
        finetuning_type="full",
        template="qwen2_vl",
        trust_remote_code=True,
        video_maxlen=4,
        video_fps=2.0,
        video_max_pixels=12544,
        cutoff_len=512,
        preprocessing_num_workers=1,
        overwrite_cache=True,
        dataset_dir=data["output_dir"],
        dataset=data["train_dataset"],
        output_dir=out,
        scst_num_samples=2,
        scst_baseline="greedy",
        scst_max_new_tokens=6,
        min_new_tokens=3,  # the samples of the random model have words
        max_new_tokens=6,
        per_device_train_batch_size=2,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        save_strategy="no",
    )
    config.update(overrides)
    return config


def test_sample_log_survives_kill_and_resume(tiny_qwen25vl, caption_data, tmp_path):
    out = str(tmp_path / "scst")
    config = tiny_scst(
        tiny_qwen25vl, caption_data, out, max_steps=4, save_strategy="steps", save_steps=2,
        scst_sample_log_steps=1, scst_sample_log_videos=1,
        report_to="tensorboard" if HAVE_TENSORBOARD else "none",
    )
    kill_at_checkpoint_and_resume(config, str(tmp_path), step=2)
    rows = read_jsonl(os.path.join(out, "scst_samples.jsonl"))
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # steps after checkpoint-2 once each, nothing lost before it
    for row in rows:
        assert row["references"] and len(row["samples"]) == 2 and row["baseline"]["type"] == "greedy"
        for sample in row["samples"]:
            assert isinstance(sample["caption"], str)
            assert sample["advantage"] == pytest.approx(sample["reward"] - row["baseline"]["reward"], abs=2e-4)
            assert {"cider_d", "bleu_4"} <= set(sample)
    manifest = read_json(os.path.join(out, "llamafactory_video_artifacts.json"))
    assert manifest["files"]["scst_samples.jsonl"]["stage"] == "scst"
    logs = [e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "loss" in e]
    for key in ("opening_share", "distinct_1", "distinct_2", "repeated_3gram_share"):
        assert all(0.0 <= e[f"scst/degeneration/{key}"] <= 1.0 for e in logs), key
    assert all(e["scst/degeneration/num_samples"] == 4 for e in logs)  # batch 2 x K 2 per window
    if HAVE_TENSORBOARD:  # the same rows as a text table per logged step (<output_dir>/runs/<date>, both runs)
        tables = tensorboard_tables(out)
        assert set(tables) == {1, 2, 3, 4}
        assert "| video | kind | caption | reward | advantage |" in tables[4] and rows[-1]["video"] in tables[4]
        assert tables[4].count("| sample |") == 2 and "| greedy |" in tables[4]


def test_degeneration_threshold_stops_the_run_naming_the_opening(tiny_qwen25vl, caption_data, tmp_path):
    out = str(tmp_path / "stop")
    # every window has >= 1 caption of >= 2 words, so its top opening holds >= 1/4 of the samples: above 0.01
    config = tiny_scst(
        tiny_qwen25vl, caption_data, out, max_steps=3,
        scst_degeneration_threshold=0.01, scst_degeneration_min_samples=1,
    )
    proc = run_cli(config, str(tmp_path), "stop", expect_ok=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "DegenerationStop" in text and "% of samples start with \"" in text, text[-3000:]
    assert "`scst_degeneration_threshold: 0.01`" in text and "No checkpoint was saved" in text
    assert not os.path.isfile(os.path.join(out, "model.safetensors"))
