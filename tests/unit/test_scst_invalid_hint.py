"""scst's stop on bad samples names what an scst user can do, not action_cls's `action_invalid_samples` (issue 16)."""

from types import SimpleNamespace

import pytest


def test_scst_bad_samples_hint_names_scst_remedies(monkeypatch):
    from datasets import Dataset

    from llamafactory_video.data.processor.scst import check_references
    from llamafactory_video.train.scst import workflow

    refs, problem = check_references([])
    assert refs == [] and problem
    train = Dataset.from_dict(
        {"dataset_name": ["caps", "caps"], "sample_index": [0, 1], "problem": ["", problem], "references": [["a"], []]}
    )
    tokenizer = SimpleNamespace(padding_side="right")
    monkeypatch.setattr(workflow, "load_tokenizer", lambda model_args: {"tokenizer": tokenizer, "processor": None})
    monkeypatch.setattr(workflow, "get_template_and_fix_tokenizer", lambda tokenizer, data_args: None)
    monkeypatch.setattr(workflow, "get_dataset", lambda *args, **kwargs: {"train_dataset": train})

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not load before the data check")

    monkeypatch.setattr(workflow, "load_model", no_model)
    args = SimpleNamespace(dataset_dir="/data/here", template="qwen2_vl")
    with pytest.raises(ValueError) as info:
        stage = SimpleNamespace(stage="scst", scst_baseline="greedy", scst_beam_width=1)
        workflow.run_scst(SimpleNamespace(), args, SimpleNamespace(), stage, SimpleNamespace(num_beams=1))
    message = str(info.value)
    assert "dataset `caps` sample 1" in message and "/data/here" in message, message
    assert "set `action_invalid_samples: skip`" not in message, message  # a key scst ignores
    assert "scst has no key to skip bad samples" in message and "`references`" in message, message
    assert "check-data" in message and "--write-clean" in message, message
