r"""TokenMining of HiLight (seed 002, section 4): fuse a video tower's per-patch tokens and a frame tower's per-frame
embeddings into ``T`` visual tokens for the LLM.

Shapes (seed: CLIP-ViP B/16 video tower, Long-CLIP frame tower, Gemma-2B):

* video tokens ``(B, N, D_v)``: every patch token of every frame (``N = M + T * P``, 4 + 12 x 196 = 2356, ``D_v`` 768);
* frame embeddings ``(B, T, D_f)``: one pooled embedding per frame (12 x 512);
* output ``(B, T, H)``: one LLM token per frame (12 x 2048).

Every variant first projects the video tokens to the frame width (``D_v -> D_f``), then runs one cross attention
with the frame embeddings as queries over all video tokens (``T`` queries x ``N`` keys, a residual on the queries,
as Mini-Gemini's patch info mining), then maps into the LLM:

* ``a``: cross attention + 1 linear (``D_f -> H``);
* ``b``: cross attention + 2 linear with a ReLU between (``D_f -> H -> H``);
* ``c``: a projector per tower first (video ``D_v -> D_f``, frame ``D_f -> D_f``, each linear + ReLU), then cross
  attention + 2 linear with a ReLU between.

Leaf module names avoid the names LoRA targets in CLIP / SigLIP / Qwen2 / Gemma (``q_proj``, ``fc1``...), so
``lora_target: all`` never wraps TokenMining; ``additional_target: token_mining`` trains it whole.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

TokenMiningVariant = Literal["a", "b", "c"]
TOKEN_MINING_VARIANTS: tuple[str, ...] = ("a", "b", "c")


def multi_head_cross_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_heads: int
) -> torch.Tensor:
    r"""Scaled dot-product attention of ``query`` over ``key``/``value``, split into ``num_heads`` heads.

    Args:
        query: ``(B, T, D)`` (already projected).
        key / value: ``(B, N, D)`` (already projected).
        num_heads: ``D`` must be divisible by it.

    Returns:
        ``(B, T, D)``: per head ``softmax(q k^T / sqrt(D / num_heads)) v``, heads concatenated.
    """
    batch, queries, dim = query.shape
    if dim % num_heads != 0:
        raise ValueError(f"TokenMining width {dim} is not divisible by token_mining_heads={num_heads}")
    head_dim = dim // num_heads

    def split(x: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, h, L, d)
        return x.view(batch, x.shape[1], num_heads, head_dim).transpose(1, 2)

    q, k, v = split(query), split(key), split(value)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)  # (B, h, T, N)
    return (weights @ v).transpose(1, 2).reshape(batch, queries, dim)


class FrameCrossAttention(nn.Module):
    r"""Frame embeddings ``(B, T, D)`` attend over video tokens ``(B, N, D)``; returns ``(B, T, D)`` =
    ``frames + W_o attn(W_q frames, W_k video, W_v video)``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"TokenMining width {dim} is not divisible by token_mining_heads={num_heads}")
        self.num_heads = num_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)

    def forward(self, frames: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        attended = multi_head_cross_attention(self.query(frames), self.key(video), self.value(video), self.num_heads)
        return frames + self.output(attended)


class TokenMining(nn.Module):
    r"""``(B, N, D_v)`` video tokens + ``(B, T, D_f)`` frame embeddings -> ``(B, T, H)`` LLM tokens (variants in the
    module docstring)."""

    def __init__(
        self, video_dim: int, frame_dim: int, text_dim: int, variant: TokenMiningVariant = "b", num_heads: int = 8
    ) -> None:
        super().__init__()
        if variant not in TOKEN_MINING_VARIANTS:
            raise ValueError(f"token_mining must be one of {TOKEN_MINING_VARIANTS}, got {variant!r}")
        self.variant = variant
        if variant == "c":
            self.video_proj = nn.Sequential(nn.Linear(video_dim, frame_dim), nn.ReLU())
            self.frame_proj = nn.Sequential(nn.Linear(frame_dim, frame_dim), nn.ReLU())
        else:
            self.video_proj = nn.Linear(video_dim, frame_dim)
            self.frame_proj = nn.Identity()
        self.attention = FrameCrossAttention(frame_dim, num_heads)
        if variant == "a":
            self.projector = nn.Sequential(nn.Linear(frame_dim, text_dim))
        else:
            self.projector = nn.Sequential(nn.Linear(frame_dim, text_dim), nn.ReLU(), nn.Linear(text_dim, text_dim))

    def forward(self, video_tokens: torch.Tensor, frame_embeds: torch.Tensor) -> torch.Tensor:
        r"""``(B, N, D_v)``, ``(B, T, D_f)`` -> ``(B, T, H)``."""
        if video_tokens.dim() != 3 or frame_embeds.dim() != 3 or video_tokens.shape[0] != frame_embeds.shape[0]:
            raise ValueError(
                f"TokenMining expects video tokens (B, N, D_v) and frame embeddings (B, T, D_f), got "
                f"{tuple(video_tokens.shape)} and {tuple(frame_embeds.shape)}"
            )
        video = self.video_proj(video_tokens)
        frames = self.frame_proj(frame_embeds)
        return self.projector(self.attention(frames, video))
