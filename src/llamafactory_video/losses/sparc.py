"""Losses of ``stage: sparc_align`` (seed 002): global contrastive + SPARC fine-grained local loss, as pure functions.

Notation: ``B`` captions (pairs) in the batch, ``L`` text tokens per caption, ``P`` patches per video (all frames,
``T * patches_per_frame``), ``D`` embedding width. Masks are boolean, ``True`` = the position takes part.
SPARC is arXiv 2401.09865 (Bica et al., 2024).
"""

import torch
import torch.nn.functional as F


def positive_mask(groups: torch.Tensor) -> torch.Tensor:
    r"""``(B, B)`` bool, ``True`` where captions ``i`` and ``j`` describe the same video.

    Args:
        groups: ``(B,)`` integer id of each caption's video.
    """
    return groups[:, None] == groups[None, :]


def global_contrastive_loss(
    text_emb: torch.Tensor,
    video_emb: torch.Tensor,
    logit_scale: torch.Tensor,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Symmetric InfoNCE between captions and their videos, multi-positive when ``groups`` is given.

    ``s_ij = exp(logit_scale) * <t_i, v_j>`` with L2-normalised rows. Row ``i`` (text -> video):
    ``-log(sum_{j in Pos(i)} exp s_ij / sum_j exp s_ij)``; columns likewise (video -> text); the loss is the mean of
    both directions. ``Pos(i) = {i}`` without ``groups`` (standard CLIP: captions of one video are negatives of each
    other); with ``groups`` every caption of the same video is a positive (the seed's section 1.4).

    Args:
        text_emb: ``(B, D)`` caption embeddings (after the projection).
        video_emb: ``(B, D)`` embedding of each caption's video (rows repeat when a video has several captions).
        logit_scale: scalar, the log inverse temperature (CLIP's learnable ``logit_scale``; ``exp`` is applied here).
        groups: ``(B,)`` video id per caption, or ``None``.

    Returns:
        scalar loss.
    """
    text_emb = F.normalize(text_emb, dim=-1)
    video_emb = F.normalize(video_emb, dim=-1)
    return contrastive_loss_from_logits(logit_scale.exp() * text_emb @ video_emb.t(), groups)


def contrastive_loss_from_logits(logits: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    r"""The loss of :func:`global_contrastive_loss` from ready ``(B, B)`` caption x (caption's video) logits, for
    models whose logits do not factor into independent embeddings (X-CLIP conditions each caption on the video).

    Args:
        logits: ``(B, B)``, ``logits[i, j]`` = scaled similarity of caption ``i`` and the video of caption ``j``.
        groups: ``(B,)`` video id per caption (multi-positive), or ``None``.
    """
    if groups is None:
        target = torch.arange(logits.size(0), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    pos = positive_mask(groups)
    neg_inf = torch.finfo(logits.dtype).min
    t2v = logits.logsumexp(1) - logits.masked_fill(~pos, neg_inf).logsumexp(1)
    v2t = logits.logsumexp(0) - logits.masked_fill(~pos, neg_inf).logsumexp(0)
    return 0.5 * (t2v.mean() + v2t.mean())


def sparc_alignment_weights(
    similarity: torch.Tensor,
    patch_mask: torch.Tensor,
    threshold: float | None = None,
    keep_patches: int | None = None,
) -> torch.Tensor:
    r"""SPARC alignment weights: min-max normalise token-patch similarities over patches, sparsify, renormalise.

    ``a_tp = (s_tp - min_p s_tp) / (max_p s_tp - min_p s_tp)`` over the valid patches; then either
    ``a_tp = 0`` where ``a_tp < threshold`` (``threshold=None`` -> ``1/P`` with ``P`` the sample's valid patches,
    SPARC's default) or, with ``keep_patches=k``, only the ``k`` largest ``a_tp`` of each token survive (the seed's
    "2320/2356" runs keep 36); finally ``w_tp = a_tp / sum_p a_tp``. A token whose similarities are all equal gets
    uniform weights.

    Args:
        similarity: ``(B, L, P)`` token-patch similarities.
        patch_mask: ``(B, P)`` bool, valid patches (padding frames are ``False``).
        threshold: sparsity threshold in ``[0, 1]``, or ``None`` for ``1/P``.
        keep_patches: keep the top-k patches per token instead of thresholding.

    Returns:
        ``(B, L, P)`` weights, each row summing to 1 over valid patches (0 on invalid ones).
    """
    valid = patch_mask[:, None, :].expand_as(similarity)
    big = torch.finfo(similarity.dtype).max
    s_min = similarity.masked_fill(~valid, big).amin(-1, keepdim=True)
    s_max = similarity.masked_fill(~valid, -big).amax(-1, keepdim=True)
    span = s_max - s_min
    flat = span <= 1e-12
    a = (similarity - s_min) / torch.where(flat, torch.ones_like(span), span)
    a = torch.where(flat, torch.ones_like(a), a)
    a = a.masked_fill(~valid, 0.0)
    if keep_patches is not None:
        k = min(int(keep_patches), similarity.size(-1))
        kth = a.topk(k, dim=-1).values[..., -1:]  # k-th largest per token
        a = a * (a >= kth)
    else:
        if threshold is None:
            sigma = 1.0 / patch_mask.sum(-1).clamp(min=1).to(a.dtype)[:, None, None]
        else:
            sigma = torch.as_tensor(threshold, dtype=a.dtype, device=a.device)
        a = a * (a >= sigma)
    return a / a.sum(-1, keepdim=True).clamp(min=1e-12)


def sparc_local_loss(
    token_emb: torch.Tensor,
    patch_emb: torch.Tensor,
    token_mask: torch.Tensor,
    patch_mask: torch.Tensor,
    temperature: torch.Tensor | float,
    threshold: float | None = None,
    keep_patches: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""SPARC local loss: each token against the other tokens of its own caption, both directions.

    Per pair: ``s = E V^T`` (``E`` tokens ``(L, D)``, ``V`` patches ``(P, D)``); ``W`` =
    :func:`sparc_alignment_weights` (``s``); language-grouped vision embeddings ``C = W V``; with L2-normalised rows
    ``z_rt = <e_r, c_t> / temperature``,

    ``L_i = -1/(2 M_i) sum_r [log softmax_t(z_r.)_r + log softmax_t(z_.r)_r]``

    over the ``M_i`` unmasked tokens (masked tokens are neither queries nor candidates). The loss is the mean of
    ``L_i`` over pairs with at least one unmasked token (0 when none has).

    Args:
        token_emb: ``(B, L, D)`` per-token text features in the shared space.
        patch_emb: ``(B, P, D)`` per-patch video features of each pair's video.
        token_mask: ``(B, L)`` bool: real tokens that carry visual content (padding, special tokens and, with the
            language mask, stop words are ``False``).
        patch_mask: ``(B, P)`` bool valid patches.
        temperature: scalar temperature of the token-vs-token logits.
        threshold, keep_patches: see :func:`sparc_alignment_weights`.

    Returns:
        ``(loss, weights)`` with weights ``(B, L, P)``.
    """
    similarity = torch.einsum("bld,bpd->blp", token_emb, patch_emb)
    weights = sparc_alignment_weights(similarity, patch_mask, threshold, keep_patches)
    grouped = torch.einsum("blp,bpd->bld", weights, patch_emb)
    logits = torch.einsum("bld,bmd->blm", F.normalize(token_emb, dim=-1), F.normalize(grouped, dim=-1))
    logits = logits / temperature
    pair = token_mask[:, :, None] & token_mask[:, None, :]
    neg_inf = torch.finfo(logits.dtype).min
    masked = logits.masked_fill(~pair, neg_inf)
    diag = torch.diagonal(logits, dim1=1, dim2=2)  # (B, L)
    l2v = masked.logsumexp(2) - diag
    v2l = masked.logsumexp(1) - diag
    per_token = (l2v + v2l).masked_fill(~token_mask, 0.0)
    counts = token_mask.sum(-1)
    has = counts > 0
    if not bool(has.any()):
        return (token_emb.sum() + patch_emb.sum()) * 0.0, weights
    per_pair = per_token.sum(-1)[has] / (2 * counts[has].to(per_token.dtype))
    return per_pair.mean(), weights


def mean_pairwise_cosine(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""Mean cosine similarity over distinct pairs of valid rows, per sample, averaged over samples with >= 2 rows.

    Exact and ``O(N D)``: ``sum_{i != j} <x_i, x_j> = ||sum_i x_i||^2 - N`` for unit rows.

    Args:
        features: ``(B, N, D)``.
        mask: ``(B, N)`` bool valid rows.

    Returns:
        scalar in ``[-1, 1]`` (0 when no sample has two valid rows).
    """
    unit = F.normalize(features, dim=-1) * mask[..., None].to(features.dtype)
    n = mask.sum(-1).to(features.dtype)
    total = unit.sum(1).pow(2).sum(-1)  # ||sum x||^2
    ok = n >= 2
    if not bool(ok.any()):
        return features.sum() * 0.0
    return ((total[ok] - n[ok]) / (n[ok] * (n[ok] - 1))).mean()


def collapse_penalties(
    token_emb: torch.Tensor, token_mask: torch.Tensor, patch_emb: torch.Tensor, patch_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The seed's section 1.3 guard against the local loss's trivial solution (all tokens alike, all patches
    alike): mean token-token and patch-patch cosine similarity within each sample.

    Args:
        token_emb: ``(B, L, D)``; token_mask: ``(B, L)``; patch_emb: ``(B', P, D)``; patch_mask: ``(B', P)``.

    Returns:
        ``(token_penalty, patch_penalty)`` scalars; adding ``weight * penalty`` to the loss pushes them apart.
    """
    return mean_pairwise_cosine(token_emb, token_mask), mean_pairwise_cosine(patch_emb, patch_mask)


def layer_weights(num_layers: int) -> list[float]:
    r"""Per-layer weights of ``sparc_local_layer: all_layers``: from 0.1 (first layer) to 1.0 (last), linear."""
    if num_layers < 1:
        raise ValueError("num_layers must be >= 1")
    if num_layers == 1:
        return [1.0]
    return [0.1 + 0.9 * i / (num_layers - 1) for i in range(num_layers)]
