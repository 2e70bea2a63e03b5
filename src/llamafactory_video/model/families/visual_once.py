r"""Visual features computed once and reused: the family-independent half of ``scst``'s one vision pass per step.

Every family of the layer fills its visual placeholders the same way: the vision tower + projector turn the
batch's pixels into one ``(N, D)`` feature row per placeholder token, and the model ``masked_scatter``\ s them into
the token embeddings in row-major order (row 0's placeholders first). So once a family has encoded a batch
(:meth:`~.base.VideoFamily.encode_visual`, the per-family half), the features of row ``b`` are the next ``n_b``
rows, ``n_b`` its placeholder count in ``input_ids``, and a batch whose rows are repeated ``K`` times
(sample-major, as ``scst``'s K samples) takes each row's features ``K`` times: no second run of the tower.

Shapes: ``input_ids`` ``(B, L)``; :class:`EncodedVisual` ``features[token_id]`` ``(sum_b n_b(token_id), D)``;
``deepstack`` (Qwen3-VL) one ``(sum_b n_b, D)`` tensor per level over *all* visual placeholders of a row (image
and video tokens in sequence order), as the stock model adds them to the first decoder layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch


@dataclass
class EncodedVisual:
    r"""The visual features of a batch, per placeholder token id (see the module docstring for the shapes)."""

    features: dict[int, torch.Tensor] = field(default_factory=dict)
    deepstack: Optional[list[torch.Tensor]] = None

    def detach(self) -> "EncodedVisual":
        r"""The same features cut from the graph (for ``generate``, which runs without gradient)."""
        deepstack = None if self.deepstack is None else [level.detach() for level in self.deepstack]
        return EncodedVisual({k: v.detach() for k, v in self.features.items()}, deepstack)

    @property
    def token_ids(self) -> list[int]:
        return list(self.features)


def _repeat_rows(values: torch.Tensor, counts: list[int], repeats: int) -> torch.Tensor:
    r"""``values`` ``(sum counts, D)`` split into per-row chunks of ``counts`` and each chunk repeated ``repeats``
    times, sample-major."""
    if repeats == 1:
        return values
    chunks = torch.split(values, counts, dim=0)
    return torch.cat([chunk for chunk in chunks for _ in range(repeats)], dim=0)


def repeat_encoded(encoded: EncodedVisual, input_ids: torch.Tensor, repeats: int) -> EncodedVisual:
    r"""The features of the batch ``input_ids`` ``(B, L)`` for the batch with each row repeated ``repeats`` times
    (row ``b * repeats + j`` gets row ``b``'s features); ``repeats == 1`` returns ``encoded`` itself."""
    if repeats == 1:
        return encoded
    features = {}
    for token_id, values in encoded.features.items():
        counts = (input_ids == token_id).sum(dim=1).tolist()
        features[token_id] = _repeat_rows(values, counts, repeats)
    deepstack = None
    if encoded.deepstack is not None:
        counts = visual_mask(input_ids, encoded.token_ids).sum(dim=1).tolist()
        deepstack = [_repeat_rows(level, counts, repeats) for level in encoded.deepstack]
    return EncodedVisual(features, deepstack)


def visual_mask(input_ids: torch.Tensor, token_ids: list[int]) -> torch.Tensor:
    r"""``(B, L)`` bool: the positions of any of ``token_ids``."""
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for token_id in token_ids:
        mask |= input_ids == token_id
    return mask


def embed_with_visual(embedding: torch.nn.Module, input_ids: torch.Tensor, encoded: EncodedVisual) -> torch.Tensor:
    r"""``(B, L, D)`` input embeddings of ``input_ids`` with every placeholder replaced by its visual feature, as the
    stock models do (``masked_scatter``, row-major); ``encoded`` must hold the features of exactly these rows."""
    embeds = embedding(input_ids)
    for token_id, values in encoded.features.items():
        mask = (input_ids == token_id).unsqueeze(-1).expand_as(embeds)
        if int(mask[..., 0].sum()) != values.shape[0]:
            raise ValueError(
                f"{int(mask[..., 0].sum())} placeholder tokens (id {token_id}) but {values.shape[0]} visual features."
            )
        embeds = embeds.masked_scatter(mask, values.to(embeds.device, embeds.dtype))
    return embeds
