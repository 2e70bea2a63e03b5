r"""Tiny offline inputs of ``llamafactory-video hilight-build``: two CLIP towers and a Qwen2 causal LM.

Like :mod:`llamafactory_video.testing.tiny_model`, nothing is downloaded: the towers are tiny random ``CLIPModel``
checkpoints with a real ``CLIPImageProcessor`` (:func:`~llamafactory_video.testing.tiny_dual_encoder.
build_tiny_dual_encoder`), the LLM a random ``Qwen2ForCausalLM`` with the real ``Qwen2Tokenizer`` class trained on
the built-in corpus (:func:`~llamafactory_video.testing.tiny_model.build_tiny_tokenizer`).
"""

from __future__ import annotations

import os
from pathlib import Path


def build_tiny_qwen2_lm(
    output_dir: str | os.PathLike[str],
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
    initializer_range: float = 0.02,
) -> str:
    r"""A ``Qwen2ForCausalLM`` (``hidden_size`` wide, ``num_layers`` layers, 4 heads / 2 KV heads, exact vocabulary:
    adding a token resizes the embedding) with the tiny ``Qwen2Tokenizer`` and its ChatML chat template.

    ``initializer_range`` is the std of the random weights (transformers' default 0.02 suits widths in the
    thousands; at width 64 every layer is then a near-zero map and the residual stream is just the embedding:
    ``hidden_size ** -0.5`` makes the tiny LM learn from its inputs many times faster, docs/models/hilight.md)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    from .tiny_model import build_tiny_tokenizer

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=False,
        initializer_range=initializer_range,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=pad, eos_token_id=[eos, pad], pad_token_id=pad, do_sample=False
    )
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return str(out)


def build_tiny_hilight_inputs(root: str | os.PathLike[str], seed: int = 0) -> dict[str, str]:
    r"""Under ``root``: ``video_tower`` (CLIP, 32 px frames, patch 8 -> 16 patches a frame, width 32), ``frame_tower``
    (CLIP, 32 px, width 24, projection 16) and ``llm`` (Qwen2, width 32). Returns ``{"video_tower", "frame_tower",
    "llm"} -> directory``."""
    from .tiny_dual_encoder import build_tiny_dual_encoder

    root = Path(root)
    return {
        "video_tower": build_tiny_dual_encoder(
            root / "video_tower",
            kind="clip",
            image_size=32,
            patch_size=8,
            hidden_size=32,
            projection_dim=16,
            num_layers=1,
            num_heads=2,
            seed=seed,
        ),
        "frame_tower": build_tiny_dual_encoder(
            root / "frame_tower",
            kind="clip",
            image_size=32,
            patch_size=16,
            hidden_size=24,
            projection_dim=16,
            num_layers=1,
            num_heads=2,
            seed=seed + 1,
        ),
        "llm": build_tiny_qwen2_lm(root / "llm", seed=seed + 2),
    }
