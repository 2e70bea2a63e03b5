"""The objectives of the scst stage (GRPO advantages, PPO's clipped ratio, KL to the reference) against naive loops."""

import math

import pytest
import torch

from llamafactory_video.losses.scst import first_eos_mask, scst_loss
from llamafactory_video.losses.scst_objectives import (
    clipped_policy_loss,
    group_normalized_advantages,
    kl_to_reference,
)
from llamafactory_video.train.scst.objectives import RepeatedChunkSampler, RolloutCache, Rollout, advantages_for


def test_group_normalized_advantages_uneven_groups_against_naive_loop():
    rewards = torch.tensor([1.0, 2.0, 4.0, 0.5, 0.5, 3.0, -1.0, 2.0, 7.0])
    groups = torch.tensor([0, 0, 0, 5, 5, 2, 2, 2, 2])  # sizes 3, 2, 4; ids need not be contiguous
    expected = []
    for i, r in enumerate(rewards.tolist()):
        members = [rewards[j].item() for j in range(len(rewards)) if groups[j] == groups[i]]
        mean = sum(members) / len(members)
        std = math.sqrt(sum((m - mean) ** 2 for m in members) / len(members))
        expected.append((r - mean) / (std + 1e-4))
    got = group_normalized_advantages(rewards, groups)
    assert got.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # a group of equal rewards has no signal, not 0 / 0
    assert group_normalized_advantages(torch.ones(3), torch.zeros(3, dtype=torch.long)).abs().max() == 0


def test_advantages_for_each_baseline():
    rewards = torch.tensor([[1.0, 3.0], [2.0, 2.0], [0.0, 4.0]])
    base = torch.tensor([2.0, 1.0, 0.0])
    assert advantages_for("greedy", rewards, base).tolist() == [-1.0, 1.0, 1.0, 1.0, 0.0, 4.0]
    assert advantages_for("beam", rewards, base).tolist() == [-1.0, 1.0, 1.0, 1.0, 0.0, 4.0]
    assert advantages_for("mean", rewards, None).tolist() == [-2.0, 2.0, 0.0, 0.0, -4.0, 4.0]
    grpo = advantages_for("grpo", rewards, None)
    assert grpo.tolist() == pytest.approx([-1.0, 1.0, 0.0, 0.0, -1.0, 1.0], abs=1e-3)
    with pytest.raises(ValueError, match="baseline captions"):
        advantages_for("greedy", rewards, None)


def _naive_clipped(logprobs, old, mask, adv, eps):
    total = 0.0
    for i in range(logprobs.shape[0]):
        terms, n = 0.0, 0.0
        for t in range(logprobs.shape[1]):
            if mask[i, t] == 0:
                continue
            ratio = math.exp(logprobs[i, t].item() - old[i, t].item())
            a = adv[i].item()
            terms += min(ratio * a, min(max(ratio, 1 - eps), 1 + eps) * a)
            n += 1
        total += -terms / max(n, 1.0)
    return total / logprobs.shape[0]


def test_clipped_policy_loss_against_naive_loop():
    g = torch.Generator().manual_seed(1)
    logprobs = -torch.rand(7, 6, generator=g)
    old = logprobs + 0.5 * torch.randn(7, 6, generator=g)  # ratios well outside [0.8, 1.2]
    mask = first_eos_mask(torch.randint(0, 5, (7, 6), generator=g), [4])
    adv = torch.randn(7, generator=g)
    loss, clip_fraction = clipped_policy_loss(logprobs, old, mask, adv, 0.2)
    assert loss.item() == pytest.approx(_naive_clipped(logprobs, old, mask, adv, 0.2), rel=1e-5)
    clipped = 0
    for i in range(7):
        for t in range(6):
            ratio = math.exp(logprobs[i, t].item() - old[i, t].item())
            a = adv[i].item()
            clipped += int(mask[i, t] and min(max(ratio, 0.8), 1.2) * a < ratio * a)
    assert clip_fraction.item() == pytest.approx(clipped / mask.sum().item())
    assert 0 < clip_fraction < 1


def test_clipped_loss_at_the_sampling_policy_has_reinforce_gradient():
    g = torch.Generator().manual_seed(2)
    base = -torch.rand(5, 4, generator=g)
    mask = first_eos_mask(torch.randint(0, 4, (5, 4), generator=g), [3])
    adv = torch.randn(5, generator=g)
    a = base.clone().requires_grad_()
    b = base.clone().requires_grad_()
    loss, clip_fraction = clipped_policy_loss(a, base, mask, adv)
    assert loss.item() == pytest.approx(-adv.mean().item(), rel=1e-6) and clip_fraction == 0
    loss.backward()
    scst_loss(b, mask, adv).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


def test_clipped_loss_stops_the_gradient_outside_the_clip_range():
    old = torch.zeros(2, 1)
    logprobs = torch.tensor([[math.log(1.5)], [math.log(0.5)]]).requires_grad_()
    mask = torch.ones(2, 1)
    # ratio 1.5 with A > 0 and ratio 0.5 with A < 0: both clipped, no gradient pushes them further
    loss, _ = clipped_policy_loss(logprobs, old, mask, torch.tensor([1.0, -1.0]), 0.2)
    loss.backward()
    assert logprobs.grad.abs().max() == 0
    assert loss.item() == pytest.approx(-(1.2 * 1.0 + 0.8 * -1.0) / 2)


def test_uneven_micro_batches_sum_to_the_full_batch():
    g = torch.Generator().manual_seed(4)
    logprobs = -torch.rand(9, 5, generator=g).requires_grad_()
    old = (logprobs + 0.3 * torch.randn(9, 5, generator=g)).detach()
    ref = (logprobs + 0.3 * torch.randn(9, 5, generator=g)).detach()
    mask = first_eos_mask(torch.randint(0, 4, (9, 5), generator=g), [3])
    adv = torch.randn(9, generator=g)

    def loss_of(sl):
        return clipped_policy_loss(logprobs[sl], old[sl], mask[sl], adv[sl])[0] + 0.1 * kl_to_reference(
            logprobs[sl], ref[sl], mask[sl]
        ).mean()

    full = loss_of(slice(0, 9))
    (grad_full,) = torch.autograd.grad(full, logprobs)
    cuts = [(0, 2), (2, 7), (7, 9)]  # 2 + 5 + 2: micro-batch means weighted by their sizes
    acc = sum(loss_of(slice(a, b)) * (b - a) / 9 for a, b in cuts)
    (grad_acc,) = torch.autograd.grad(acc, logprobs)
    assert full.item() == pytest.approx(acc.item(), rel=1e-6)
    assert torch.allclose(grad_full, grad_acc, atol=1e-7)


def test_kl_to_reference_against_naive_loop():
    g = torch.Generator().manual_seed(5)
    logprobs = -torch.rand(4, 6, generator=g)
    ref = -torch.rand(4, 6, generator=g)
    mask = first_eos_mask(torch.randint(0, 5, (4, 6), generator=g), [4])
    expected = []
    for i in range(4):
        total, n = 0.0, 0.0
        for t in range(6):
            if mask[i, t]:
                d = ref[i, t].item() - logprobs[i, t].item()
                total += math.exp(d) - d - 1
                n += 1
        expected.append(total / max(n, 1.0))
    got = kl_to_reference(logprobs, ref, mask)
    assert got.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert (got >= 0).all() and kl_to_reference(ref, ref, mask).abs().max() == 0


def test_repeated_chunk_sampler_repeats_each_step_and_covers_the_data():
    sampler = RepeatedChunkSampler(size=10, chunk=4, repeats=2, seed=0)
    order = list(sampler)
    assert len(order) == len(sampler) == 20
    chunks = [order[0:4], order[4:8], order[8:12], order[12:16], order[16:18], order[18:20]]
    assert chunks[0] == chunks[1] and chunks[2] == chunks[3] and chunks[4] == chunks[5]
    assert sorted(chunks[0] + chunks[2] + chunks[4]) == list(range(10))
    assert list(sampler) != order  # a new order at the next pass


def test_rollout_cache_reuses_a_batch_for_its_updates_then_drops_it():
    cache = RolloutCache(updates=3)
    assert cache.take(["a#0", "a#1"]) is None
    rollout = Rollout(sampled=torch.zeros(2, 1), mask=torch.ones(2, 1), advantages=torch.zeros(2))
    cache.put(["a#0", "a#1"], rollout)
    assert cache.take(["a#0", "a#1"]) is rollout and cache.take(["a#0", "a#1"]) is rollout
    assert cache.take(["a#0", "a#1"]) is None  # used 3 times
    single = RolloutCache(updates=1)
    single.put(["b#0"], rollout)
    assert single.take(["b#0"]) is None
