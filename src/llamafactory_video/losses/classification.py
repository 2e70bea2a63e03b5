"""Classification losses for the ``action_cls`` stage."""

import torch
import torch.nn.functional as F


def gather_token_hidden(hidden: torch.Tensor, input_ids: torch.Tensor, token_id: int) -> torch.Tensor:
    r"""Hidden state at the LAST occurrence of ``token_id`` in each row.

    Args:
        hidden: ``(B, T, H)`` last-layer hidden states.
        input_ids: ``(B, T)`` token ids aligned with ``hidden``.
        token_id: id of the ``<ACTION>`` token.

    Returns:
        ``(B, H)``.

    Raises:
        ValueError: a row has no such token (the data processor rejects these samples before training).
    """
    is_token = input_ids == token_id
    has_token = is_token.any(dim=-1)
    if not bool(has_token.all()):
        rows = torch.nonzero(~has_token).flatten().tolist()
        raise ValueError(f"Batch rows {rows} contain no action token (id {token_id}).")
    positions = torch.arange(input_ids.size(1), device=input_ids.device).expand_as(input_ids)
    last = torch.where(is_token, positions, torch.full_like(positions, -1)).max(dim=-1).values
    return hidden[torch.arange(hidden.size(0), device=hidden.device), last]


def action_cls_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    r"""Mean cross-entropy over the batch, computed in float32.

    Args:
        logits: ``(B, C)`` class logits.
        labels: ``(B,)`` integer labels in ``[0, C)``.
        label_smoothing: in ``[0, 1)``; the target is ``(1 - eps) * onehot + eps / C``.

    Returns:
        Scalar loss.
    """
    return F.cross_entropy(logits.float(), labels.long(), label_smoothing=label_smoothing)


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    r"""Identity in the forward pass; multiplies the gradient flowing back through ``x`` by ``scale``.

    ``scale = 0`` cuts the backward path (everything upstream gets zero gradients, so DDP still sees every
    parameter used); ``scale = 1`` returns ``x`` itself. Any shape.
    """
    if scale == 1.0:
        return x
    detached = x.detach()
    return detached + scale * (x - detached)
