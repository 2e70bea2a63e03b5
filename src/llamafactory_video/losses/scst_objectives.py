"""Advantages and objectives of the ``scst`` stage beyond the seed's REINFORCE, as pure functions.

Shapes: ``N`` sampled completions (``K`` per video, sample-major), ``G`` generated positions. Token masks are
:func:`llamafactory_video.losses.scst.first_eos_mask`'s (1 up to and including the first end token).
"""

import torch

from .scst import sequence_mean_logprob


GRPO_EPS = 1e-4


def group_normalized_advantages(rewards: torch.Tensor, groups: torch.Tensor, eps: float = GRPO_EPS) -> torch.Tensor:
    r"""GRPO's advantage ``A_i = (r_i - mean_g r) / (std_g r + eps)`` over the completions of the same group g
    (the samples of one video), with the population std (divide by the group's size).

    Args:
        rewards: ``(N,)`` rewards. groups: ``(N,)`` integer group id of each completion (groups may differ in size).
        eps: added to the std, so a group of equal rewards gets advantage 0 rather than 0 / 0.

    Returns:
        ``(N,)`` float advantages (no gradient).
    """
    rewards = rewards.detach().double()
    _, inverse = torch.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if inverse.numel() else 0
    count = torch.zeros(n_groups, dtype=torch.double).index_add_(0, inverse, torch.ones_like(rewards))
    mean = torch.zeros(n_groups, dtype=torch.double).index_add_(0, inverse, rewards) / count
    centered = rewards - mean[inverse]
    var = torch.zeros(n_groups, dtype=torch.double).index_add_(0, inverse, centered**2) / count
    return (centered / (var.sqrt()[inverse] + eps)).float()


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    mask: torch.Tensor,
    advantages: torch.Tensor,
    epsilon: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""PPO's clipped surrogate, per token, length-normalised like the seed's loss:

    ``rho_t = exp(log p(w_t) - log p_old(w_t))``,
    ``L = -1/N sum_i 1/T_i sum_t min(rho_t A_i, clip(rho_t, 1 - eps, 1 + eps) A_i)``.

    At ``p = p_old`` the value is ``-mean_i A_i`` and the gradient equals :func:`~.scst.scst_loss`'s.

    Args:
        logprobs: ``(N, G)`` log-probabilities of the sampled tokens under the current policy (with gradient).
        old_logprobs: ``(N, G)`` the same under the policy that sampled them (no gradient).
        mask: ``(N, G)`` caption-token mask. advantages: ``(N,)``. epsilon: clip range.

    Returns:
        ``(loss, clip_fraction)``: scalar loss and the share of caption tokens whose ratio was clipped.
    """
    adv = advantages.detach().to(logprobs.dtype).unsqueeze(-1)
    ratio = torch.exp(logprobs - old_logprobs.detach().to(logprobs.dtype))
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - epsilon, 1.0 + epsilon) * adv
    per_token = torch.minimum(unclipped, clipped)
    loss = -sequence_mean_logprob(per_token, mask).mean()
    with torch.no_grad():
        was_clipped = ((clipped < unclipped).to(mask.dtype) * mask).sum()
        clip_fraction = was_clipped / mask.sum().clamp(min=1.0)
    return loss, clip_fraction


def kl_to_reference(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""Per-completion KL estimate to the reference model (Schulman's unbiased, non-negative "k3" on the sampled
    tokens, as GRPO), averaged over the caption's tokens:

    ``KL_i = 1/T_i sum_t [exp(q_t - l_t) - (q_t - l_t) - 1]``, ``l = log p_theta``, ``q = log p_ref``.

    Args:
        logprobs: ``(N, G)`` with gradient. ref_logprobs: ``(N, G)`` of the reference (no gradient).
        mask: ``(N, G)`` caption-token mask.

    Returns:
        ``(N,)``; the stage adds ``beta * mean_i KL_i`` to its loss.
    """
    delta = ref_logprobs.detach().to(logprobs.dtype) - logprobs
    return sequence_mean_logprob(torch.exp(delta) - delta - 1.0, mask)
