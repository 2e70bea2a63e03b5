"""sparc_align losses and data helpers against naive per-sample loops."""

import math

import pytest
import torch
import torch.nn.functional as F

from llamafactory_video.losses.sparc import (
    collapse_penalties,
    global_contrastive_loss,
    layer_weights,
    sparc_alignment_weights,
    sparc_local_loss,
)


def naive_weights(sim, patch_mask, threshold=None, keep=None):
    b, n_tok, p = sim.shape
    out = torch.zeros_like(sim)
    for i in range(b):
        valid = [k for k in range(p) if patch_mask[i, k]]
        for t in range(n_tok):
            s = [float(sim[i, t, k]) for k in valid]
            lo, hi = min(s), max(s)
            a = [1.0 if hi - lo <= 1e-12 else (x - lo) / (hi - lo) for x in s]
            if keep is not None:
                kth = sorted(a, reverse=True)[min(keep, len(a)) - 1]
                a = [x if x >= kth else 0.0 for x in a]
            else:
                sigma = 1.0 / len(valid) if threshold is None else threshold
                a = [x if x >= sigma else 0.0 for x in a]
            total = sum(a)
            for k, x in zip(valid, a):
                out[i, t, k] = x / total
    return out


def naive_local(tokens, patches, token_mask, patch_mask, temperature, threshold=None, keep=None):
    losses = []
    for i in range(tokens.size(0)):
        idx = [t for t in range(tokens.size(1)) if token_mask[i, t]]
        if not idx:
            continue
        sim = (tokens[i] @ patches[i].t())[None]
        w = naive_weights(sim, patch_mask[i : i + 1], threshold, keep)[0]
        grouped = w @ patches[i]
        e = F.normalize(tokens[i, idx], dim=-1)
        c = F.normalize(grouped[idx], dim=-1)
        z = e @ c.t() / temperature
        target = torch.arange(len(idx))
        losses.append(0.5 * (F.cross_entropy(z, target) + F.cross_entropy(z.t(), target)))
    return torch.stack(losses).mean()


def naive_global(text, video, scale, groups=None):
    t, v = F.normalize(text, dim=-1), F.normalize(video, dim=-1)
    logits = math.exp(scale) * t @ v.t()
    b = logits.size(0)
    total = 0.0
    for i in range(b):
        pos = [j for j in range(b) if (groups is None and j == i) or (groups is not None and groups[j] == groups[i])]
        row = torch.softmax(logits[i], 0)
        col = torch.softmax(logits[:, i], 0)
        total += -torch.log(row[pos].sum()) - torch.log(col[pos].sum())
    return total / (2 * b)


def _inputs(seed=0, b=3, n_tok=6, p=10, d=8):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(b, n_tok, d, generator=g, dtype=torch.float64)
    patches = torch.randn(b, p, d, generator=g, dtype=torch.float64)
    token_mask = torch.ones(b, n_tok, dtype=torch.bool)
    token_mask[0, 4:] = False  # padding
    token_mask[1, 0] = False  # special token
    token_mask[2, :] = False  # a caption with no usable token is skipped
    patch_mask = torch.ones(b, p, dtype=torch.bool)
    patch_mask[1, 7:] = False  # a padded frame
    return tokens, patches, token_mask, patch_mask


@pytest.mark.parametrize("threshold,keep", [(None, None), (0.3, None), (None, 3)])
def test_alignment_weights_match_naive(threshold, keep):
    tokens, patches, _, patch_mask = _inputs()
    sim = torch.einsum("bld,bpd->blp", tokens, patches)
    got = sparc_alignment_weights(sim, patch_mask, threshold, keep)
    torch.testing.assert_close(got, naive_weights(sim, patch_mask, threshold, keep))
    sums = got.sum(-1)
    torch.testing.assert_close(sums, torch.ones_like(sums))
    assert (got[1, :, 7:] == 0).all()  # padded patches never get weight


def test_sparsification_keeps_at_most_k_and_drops_below_threshold():
    sim = torch.tensor([[[0.0, 1.0, 2.0, 3.0, 10.0]]], dtype=torch.float64)
    mask = torch.ones(1, 5, dtype=torch.bool)
    w = sparc_alignment_weights(sim, mask, keep_patches=2)[0, 0]
    assert (w > 0).sum() == 2 and w[4] > w[3] > 0
    # default 1/P = 0.2: normalised [0, .1, .2, .3, 1] -> patch 1 dropped, patch 2 kept (>=)
    w = sparc_alignment_weights(sim, mask)[0, 0]
    assert w[0] == 0 and w[1] == 0 and w[2] > 0
    torch.testing.assert_close(w, torch.tensor([0, 0, 0.2, 0.3, 1.0], dtype=torch.float64) / 1.5)
    flat = sparc_alignment_weights(torch.ones(1, 1, 4), torch.ones(1, 4, dtype=torch.bool))
    torch.testing.assert_close(flat, torch.full((1, 1, 4), 0.25))


@pytest.mark.parametrize("threshold,keep", [(None, None), (0.5, None), (None, 4)])
def test_local_loss_matches_naive_loop(threshold, keep):
    tokens, patches, token_mask, patch_mask = _inputs(seed=1)
    got, weights = sparc_local_loss(tokens, patches, token_mask, patch_mask, 0.1, threshold, keep)
    want = naive_local(tokens, patches, token_mask, patch_mask, 0.1, threshold, keep)
    torch.testing.assert_close(got, want)
    assert weights.shape == (3, 6, 10)


def test_local_loss_ignores_masked_tokens_and_padding_values():
    tokens, patches, token_mask, patch_mask = _inputs(seed=2)
    base, _ = sparc_local_loss(tokens, patches, token_mask, patch_mask, 0.1)
    tokens2, patches2 = tokens.clone(), patches.clone()
    tokens2[0, 4:] = 100.0  # padded tokens
    tokens2[2] = -7.0  # fully masked caption
    patches2[1, 7:] = 55.0  # padded patches
    again, _ = sparc_local_loss(tokens2, patches2, token_mask, patch_mask, 0.1)
    torch.testing.assert_close(base, again)
    # but a language-masked content token does change it
    mask3 = token_mask.clone()
    mask3[0, 1] = False
    changed, _ = sparc_local_loss(tokens, patches, mask3, patch_mask, 0.1)
    assert not torch.isclose(changed, base)


def test_local_loss_has_gradients_and_zero_when_no_token():
    tokens, patches, token_mask, patch_mask = _inputs(seed=3)
    tokens.requires_grad_(True)
    loss, _ = sparc_local_loss(tokens, patches, token_mask, patch_mask, 0.1)
    loss.backward()
    assert tokens.grad[0, :4].abs().sum() > 0 and tokens.grad[0, 4:].abs().sum() == 0
    empty, _ = sparc_local_loss(tokens, patches, torch.zeros_like(token_mask), patch_mask, 0.1)
    assert float(empty.detach()) == 0.0


def test_global_loss_matches_naive_standard_and_multi_positive():
    g = torch.Generator().manual_seed(0)
    text = torch.randn(6, 5, generator=g, dtype=torch.float64)
    video = torch.randn(6, 5, generator=g, dtype=torch.float64)
    scale = torch.tensor(math.log(10.0), dtype=torch.float64)
    torch.testing.assert_close(global_contrastive_loss(text, video, scale), naive_global(text, video, math.log(10.0)))
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    video = video[groups]  # captions of one video share its embedding
    got = global_contrastive_loss(text, video, scale, groups)
    torch.testing.assert_close(got, naive_global(text, video, math.log(10.0), groups))
    # identity groups = standard InfoNCE; shared positives lower the loss (they are no longer negatives)
    ident = global_contrastive_loss(text, video, scale, torch.arange(6))
    torch.testing.assert_close(ident, global_contrastive_loss(text, video, scale))
    assert got < ident


def test_global_loss_gradient_accumulation_equivalence():
    r"""Mean of per-micro-batch losses == loss of the concatenated batch when micro-batches are whole batches:
    the loss is per batch, so (batch 4, accumulation 2) equals two separate batch-4 steps, not one batch of 8."""
    g = torch.Generator().manual_seed(1)
    text = torch.randn(8, 4, generator=g, dtype=torch.float64)
    video = torch.randn(8, 4, generator=g, dtype=torch.float64)
    scale = torch.tensor(2.0, dtype=torch.float64)
    two = 0.5 * (
        global_contrastive_loss(text[:4], video[:4], scale) + global_contrastive_loss(text[4:], video[4:], scale)
    )
    naive = 0.5 * (naive_global(text[:4], video[:4], 2.0) + naive_global(text[4:], video[4:], 2.0))
    torch.testing.assert_close(two, naive)
    assert not torch.isclose(two, global_contrastive_loss(text, video, scale))  # the batch defines the negatives


def test_collapse_penalties_exact_and_detect_collapse():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    tok, _ = collapse_penalties(x, mask, x, mask)
    want = []
    for i in range(2):
        rows = F.normalize(x[i][mask[i]], dim=-1)
        sim = rows @ rows.t()
        n = rows.size(0)
        want.append((sim.sum() - n) / (n * (n - 1)))
    torch.testing.assert_close(tok, torch.stack(want).mean())
    collapsed = torch.ones(1, 4, 3)
    tok, patch = collapse_penalties(
        collapsed, torch.ones(1, 4, dtype=torch.bool), collapsed, torch.ones(1, 4, dtype=torch.bool)
    )
    assert float(tok) == pytest.approx(1.0) and float(patch) == pytest.approx(1.0)


def test_layer_weights_schedule():
    assert layer_weights(1) == [1.0]
    w = layer_weights(4)
    assert w[0] == pytest.approx(0.1) and w[-1] == pytest.approx(1.0) and w == sorted(w)
