"""Self-critical sequence training (SCST) loss and baselines, as pure functions."""

import torch


def first_eos_mask(tokens: torch.Tensor, eos_ids: list[int]) -> torch.Tensor:
    r"""Mask of generated tokens up to and including the first end token of each row.

    Args:
        tokens: ``(N, G)`` generated token ids (padding after the end token, as ``generate`` returns them).
        eos_ids: ids that end a caption.

    Returns:
        ``(N, G)`` float mask; a row without an end token keeps all ``G`` tokens.
    """
    is_eos = torch.zeros_like(tokens, dtype=torch.bool)
    for eos in eos_ids:
        is_eos |= tokens == eos
    # number of end tokens strictly before each position
    before = torch.cumsum(is_eos.long(), dim=-1) - is_eos.long()
    return (before == 0).float()


def sequence_mean_logprob(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""Length-normalised log-probability of each sampled caption (the seed's "divide by valid tokens").

    Args:
        logprobs: ``(N, G)`` log p(token) of the sampled tokens.
        mask: ``(N, G)`` 1 for caption tokens up to and including the end token, 0 for padding.

    Returns:
        ``(N,)``: ``sum(mask * logprobs) / max(sum(mask), 1)``.
    """
    return (logprobs * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def scst_loss(logprobs: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    r"""``L = -mean_i[(r_i - b_i) * mean_t log p(w_it)]`` over the N sampled captions.

    Args:
        logprobs: ``(N, G)`` log-probabilities of the sampled tokens (with gradient).
        mask: ``(N, G)`` caption-token mask (see :func:`first_eos_mask`).
        advantages: ``(N,)`` reward minus baseline (no gradient).

    Returns:
        Scalar loss.
    """
    return -(advantages.detach().to(logprobs.dtype) * sequence_mean_logprob(logprobs, mask)).mean()


def mean_of_others_baseline(rewards: torch.Tensor) -> torch.Tensor:
    r"""Baseline of each sample = mean reward of the OTHER ``K - 1`` samples of the same video.

    Args:
        rewards: ``(B, K)`` rewards of K samples for each of B videos, ``K >= 2``.

    Returns:
        ``(B, K)``.
    """
    k = rewards.shape[-1]
    if k < 2:
        raise ValueError("The mean baseline needs at least 2 samples per video.")
    return (rewards.sum(-1, keepdim=True) - rewards) / (k - 1)
