"""The degeneration watch on XE captioning with the STOCK sft stage (`caption_degeneration_watch`), through the stock
llamafactory-cli on the tiny random model: metrics at each evaluation, and the threshold stop."""

import importlib.util
import os

import pytest

from .helpers import read_json, run_cli


pytestmark = pytest.mark.e2e
HAVE_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None  # in the `test` extra


def xe_config(model_dir, data, out, **overrides):
    config = dict(
        model_name_or_path=model_dir,
        stage="sft",
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
        overwrite_output_dir=True,
        dataset_dir=data["output_dir"],
        dataset=data["train_sft_dataset"],
        eval_dataset=data["test_sft_dataset"],
        output_dir=out,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        learning_rate=1e-4,
        max_steps=2,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=2,
        report_to="none",
        save_strategy="no",
        caption_degeneration_prompts=4,
        caption_degeneration_max_new_tokens=6,
    )
    config.update(overrides)
    return config


def test_xe_watch_logs_metrics_at_evaluation(tiny_qwen25vl, caption_data, tmp_path):
    out = str(tmp_path / "xe_log")
    report_to = "tensorboard" if HAVE_TENSORBOARD else "none"
    config = xe_config(tiny_qwen25vl, caption_data, out, caption_degeneration_watch="log", report_to=report_to)
    run_cli(config, str(tmp_path), "log")
    evals = [e for e in read_json(os.path.join(out, "trainer_state.json"))["log_history"] if "eval_loss" in e]
    assert len(evals) == 1 and evals[0]["step"] == 2
    for key in ("opening_share", "distinct_1", "distinct_2", "repeated_3gram_share"):
        assert 0.0 <= evals[0][f"caption/degeneration/{key}"] <= 1.0, key
    assert evals[0]["caption/degeneration/num_samples"] == 4
    final = read_json(os.path.join(out, "eval_results.json"))  # the workflow's own evaluate() returns them too
    assert final["caption/degeneration/distinct_1"] == evals[0]["caption/degeneration/distinct_1"]
    if HAVE_TENSORBOARD:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(os.path.join(out, "runs", "caption_degeneration"), size_guidance={"tensors": 0})
        acc.Reload()
        scalars = acc.Scalars("caption/degeneration/opening_share")
        # the evaluation at step 2 and the workflow's final one (same weights)
        assert {(e.step, round(e.value, 4)) for e in scalars} == {(2, evals[0]["caption/degeneration/opening_share"])}
        table = acc.Tensors("caption/degeneration/captions/text_summary")[-1].tensor_proto.string_val[0].decode()
        assert table.startswith("| prompt | caption |") and table.count("\n| ") == 4


def test_xe_watch_stops_naming_the_opening(tiny_qwen25vl, caption_data, tmp_path):
    out = str(tmp_path / "xe_stop")
    # 4 greedy captions of >= 2 words (min_new_tokens): the top opening holds >= 1/4 of them, above 0.01
    config = xe_config(
        tiny_qwen25vl, caption_data, out, caption_degeneration_watch="stop", caption_degeneration_threshold=0.01,
    )
    proc = run_cli(config, str(tmp_path), "stop", expect_ok=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "DegenerationStop" in text, text[-3000:]
    assert "% of samples start with \"" in text and "`caption_degeneration_threshold: 0.01`" in text
    assert "Degeneration watch at step 2" in text  # the metrics were logged before the stop
