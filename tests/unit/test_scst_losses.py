import math

import numpy as np
import pytest
import torch

from llamafactory_video.losses.scst import first_eos_mask, mean_of_others_baseline, scst_loss, sequence_mean_logprob


def test_first_eos_mask_against_naive_loop():
    tokens = torch.tensor([[5, 6, 2, 0, 0], [2, 0, 0, 0, 0], [5, 6, 7, 8, 9], [5, 3, 6, 2, 3]])
    eos = [2, 3]
    expected = []
    for row in tokens.tolist():
        mask, ended = [], False
        for tok in row:
            mask.append(0.0 if ended else 1.0)
            ended = ended or tok in eos
        expected.append(mask)
    assert first_eos_mask(tokens, eos).tolist() == expected


def test_scst_loss_against_naive_reference():
    g = torch.Generator().manual_seed(0)
    logprobs = -torch.rand(6, 7, generator=g)
    mask = first_eos_mask(torch.randint(0, 5, (6, 7), generator=g), [4])
    adv = torch.randn(6, generator=g)
    naive = 0.0
    for i in range(6):
        n = max(mask[i].sum().item(), 1.0)
        naive += -adv[i].item() * sum(logprobs[i, t].item() * mask[i, t].item() for t in range(7)) / n
    assert scst_loss(logprobs, mask, adv).item() == pytest.approx(naive / 6, rel=1e-6)
    assert sequence_mean_logprob(logprobs, torch.zeros(6, 7)).abs().sum() == 0  # empty captions do not divide by 0


def test_scst_loss_pinned_and_gradient_direction():
    logprobs = torch.log(torch.tensor([[0.5, 0.25], [0.8, 1.0]])).requires_grad_()
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    loss = scst_loss(logprobs, mask, adv)
    expected = -(1.0 * (math.log(0.5) + math.log(0.25)) / 2 + (-2.0) * math.log(0.8)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # positive advantage: raise its tokens' log-prob; negative: lower it; padding gets no gradient
    assert (logprobs.grad[0] < 0).all() and logprobs.grad[1, 0] > 0 and logprobs.grad[1, 1] == 0


def test_batch8_equals_four_micro_batches_of_2():
    g = torch.Generator().manual_seed(3)
    logprobs = -torch.rand(8, 5, generator=g).requires_grad_()
    mask = first_eos_mask(torch.randint(0, 4, (8, 5), generator=g), [3])
    adv = torch.randn(8, generator=g)
    full = scst_loss(logprobs, mask, adv)
    (grad_full,) = torch.autograd.grad(full, logprobs)
    acc = sum(scst_loss(logprobs[i : i + 2], mask[i : i + 2], adv[i : i + 2]) / 4 for i in range(0, 8, 2))
    (grad_acc,) = torch.autograd.grad(acc, logprobs)
    assert full.item() == pytest.approx(acc.item(), rel=1e-6)
    assert torch.allclose(grad_full, grad_acc, atol=1e-7)


def test_mean_of_others_baseline():
    rewards = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    expected = [[(2 + 3) / 2, (1 + 3) / 2, (1 + 2) / 2], [3.0, 3.0, 0.0]]
    assert mean_of_others_baseline(rewards).tolist() == expected
    with pytest.raises(ValueError, match="at least 2"):
        mean_of_others_baseline(torch.ones(2, 1))


def test_caption_reward_mix_and_length_penalty():
    from llamafactory_video.metrics.captions import tokenize
    from llamafactory_video.rewards.cider import CiderDScorer
    from llamafactory_video.rewards.scst import CaptionReward, length_penalty

    refs = {
        "a": ["a red square moves right", "the red square goes right"],
        "b": ["a green circle moves left", "the green circle goes left"],
    }
    scorer = CiderDScorer(refs, tokenize=tokenize)
    reward = CaptionReward(scorer, {"cider_d": 0.7, "bleu_4": 0.3}, length_coefficient=0.01, target_words=5)
    captions = ["A red square moves right.", "A green circle moves right."]
    total, parts = reward(captions, ["a", "b"], [refs["a"], refs["b"]])
    expected = 0.7 * parts["cider_d"] + 0.3 * parts["bleu_4"] - 0.01 * np.abs(np.array([5, 5]) - 5)
    np.testing.assert_allclose(total, expected)
    assert parts["cider_d"][0] > parts["cider_d"][1] > 0
    np.testing.assert_allclose(length_penalty(["a b c", "a"], 0.5, 2), [0.5, 0.5])


def test_non_finite_reward_stops_with_the_captions():
    from llamafactory_video.train.scst.trainer import ScstTrainer

    expected = r"not finite for 1 caption\(s\), stopping: v#3: 'a red square' -> nan"
    with pytest.raises(FloatingPointError, match=expected):
        ScstTrainer._check_finite(np.array([0.5, np.nan]), ["fine", "a red square"], ["v#1", "v#3"])
    ScstTrainer._check_finite(np.array([0.5, 1.0]), ["a", "b"], ["k1", "k2"])


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen3_vl"])
def test_expand_visual_inputs_repeats_each_sample(family):
    from llamafactory_video.model.families import FAMILIES
    from llamafactory_video.train.scst.trainer import expand_visual_inputs

    grid = torch.tensor([[1, 2, 2], [2, 2, 2]])  # 4 and 8 patch rows
    pixels = torch.arange(12).float().unsqueeze(-1)
    out = expand_visual_inputs(
        {"pixel_values_videos": pixels, "video_grid_thw": grid, "second_per_grid_ts": [0.5, 1.0]}, 2, FAMILIES[family]
    )
    assert out["pixel_values_videos"].flatten().tolist() == [0, 1, 2, 3] * 2 + list(range(4, 12)) * 2
    assert out["video_grid_thw"].tolist() == [[1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert out["second_per_grid_ts"].tolist() == [0.5, 0.5, 1.0, 1.0]
