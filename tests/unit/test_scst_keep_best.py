"""scst_keep_best (train/scst/selection.py): which check wins, and the parameter snapshot / restore."""

import math

import pytest
import torch

from llamafactory_video.train.scst.selection import best_index, restore, snapshot


def naive_best(scores):
    finite = [(s, -i) for i, s in enumerate(scores) if not math.isnan(s)]
    return -max(finite)[1] if finite else 0


@pytest.mark.parametrize(
    "scores",
    [
        [1.0],
        [1.0, 2.0, 1.5],
        [2.0, 2.0, 2.0],  # ties: the start
        [1.0, 3.0, 3.0],  # ties: the earlier epoch
        [4.2, 4.1, 4.0],  # never improved: the start
        [float("nan"), 1.0, 0.5],
        [1.0, float("nan"), 2.0],
        [float("nan"), float("nan")],
    ],
)
def test_best_index_matches_a_naive_argmax_with_ties_to_the_earliest(scores):
    assert best_index(scores) == naive_best(scores)


def test_snapshot_restore_round_trip_touches_trainable_parameters_only():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[1].weight.requires_grad_(False)
    kept = snapshot(model)
    assert set(kept) == {"0.weight", "0.bias", "1.bias"}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    frozen_after = model[1].weight.detach().clone()
    restore(model, kept)
    for name, p in model.named_parameters():
        expected = frozen_after if name == "1.weight" else before[name]
        assert torch.equal(p, expected), name
    assert kept["0.weight"].data_ptr() != model[0].weight.data_ptr()  # a copy, not a view


def test_restore_names_missing_parameters():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(KeyError, match="not in the model"):
        restore(model, {"nope.weight": torch.zeros(2, 2)})


def test_keep_best_keys_are_checked_at_parse():
    from llamafactory_video.hparams import ScstArguments

    args = ScstArguments(scst_keep_best="train_reward", scst_keep_best_samples=8)
    args.validate()
    assert ScstArguments().scst_keep_best == "none"
    with pytest.raises(ValueError, match="Invalid value `best` for `scst_keep_best`"):
        ScstArguments(scst_keep_best="best")
    with pytest.raises(ValueError, match="scst_keep_best_samples"):
        ScstArguments(scst_keep_best_samples=0).validate()
