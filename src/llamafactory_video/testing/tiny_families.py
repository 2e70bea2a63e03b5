r"""Tiny offline builders of every video model family of the family layer, one function per family and one
dispatcher, :data:`FAMILY_BUILDERS` (``model/families``: each family names its builder in ``tiny_builder``).

Every builder has the signature ``build(output_dir, seed=0, vocab_layout="padded", **kwargs) -> str`` and writes a
directory that the stock LlamaFactory loader (``load_tokenizer`` / ``load_model``) loads with the family's
template: the family's real tokenizer, processor and model classes, random float32 safetensors weights, and an
embedding with spare rows (``"padded"``, like the released checkpoints) or exactly ``len(tokenizer)`` rows
(``"exact"``: adding a token resizes it). The Qwen2-VL / Qwen2.5-VL builders live in :mod:`.tiny_model`, the
InternVL and LLaVA-NeXT-Video ones in :mod:`.tiny_beyond_qwen`.

Builders of other families are added here as separate functions plus one entry in :data:`FAMILY_BUILDERS`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from .tiny_beyond_qwen import build_tiny_intern_vl, build_tiny_llava_next_video
from .tiny_model import (
    _SPARE_ROWS,
    CHAT_TEMPLATE,
    VOCAB_LAYOUTS,
    build_tiny_model,
    build_tiny_tokenizer,
)


# ---------------------------------------------------------------------------------------------------------------
# Qwen3-VL
# ---------------------------------------------------------------------------------------------------------------

#: Qwen3-VL pixel geometry: patch 16, spatial merge 2 (32 px per LLM token), temporal patch 2.
QWEN3_PATCH_SIZE = 16
QWEN3_MERGE_SIZE = 2
QWEN3_TEMPORAL_PATCH_SIZE = 2
_QWEN3_MIN_PIXELS = 64 * 64
_QWEN3_MAX_PIXELS = 128 * 128
_QWEN3_MAX_FRAMES = 16  # Qwen3VLVideoProcessor's pixel budget is per video (frames x height x width)


def build_tiny_qwen3_vl_processor(tokenizer: Any, min_pixels: int = _QWEN3_MIN_PIXELS,
                                  max_pixels: int = _QWEN3_MAX_PIXELS) -> Any:
    r"""The real ``Qwen3VLProcessor`` (``Qwen2VLImageProcessor`` + ``Qwen3VLVideoProcessor``, patch 16, merge 2,
    temporal patch 2) around ``tokenizer`` with small pixel limits (per frame; the video processor's budget is per
    video, so it gets ``max_pixels`` x 16 frames)."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    common: dict[str, Any] = {
        "patch_size": QWEN3_PATCH_SIZE,
        "temporal_patch_size": QWEN3_TEMPORAL_PATCH_SIZE,
        "merge_size": QWEN3_MERGE_SIZE,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, **common)
    video_processor = Qwen3VLVideoProcessor(
        size={"shortest_edge": min_pixels * QWEN3_TEMPORAL_PATCH_SIZE, "longest_edge": max_pixels * _QWEN3_MAX_FRAMES},
        **common,
    )
    return Qwen3VLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def _padded(num_tokens: int) -> int:
    return -(-(num_tokens + _SPARE_ROWS) // 64) * 64


def build_tiny_qwen3_vl(
    output_dir: str | os.PathLike[str],
    seed: int = 0,
    vocab_layout: str = "padded",
    hidden_size: int = 48,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    vision_depth: int = 2,
    vision_hidden_size: int = 32,
    vision_num_heads: int = 2,
    deepstack_visual_indexes: tuple[int, ...] = (0,),
    vocab_size: int | None = None,
) -> str:
    r"""Write a tiny random Qwen3-VL checkpoint (``Qwen3VLForConditionalGeneration``) with the Qwen2 BPE tokenizer
    of :func:`~.tiny_model.build_tiny_tokenizer` (Qwen3-VL keeps Qwen2-VL's special tokens) and a real
    ``Qwen3VLProcessor``; loads with template ``qwen3_vl`` (or ``qwen3_vl_nothink``).

    Text: ``hidden_size`` wide, ``num_layers`` layers, interleaved M-RoPE (``mrope_section`` splitting
    ``head_dim / 2``). Vision: ``vision_depth`` blocks of ``vision_hidden_size``, patch 16, merge 2, temporal patch
    2, an 8 x 8 learned position grid, deepstack features from the blocks in ``deepstack_visual_indexes`` (added to
    the first decoder layers). ``vocab_size`` (>= the tokenizer) overrides ``vocab_layout`` (e.g. the real
    151936 rows for benchmarks).
    """
    import torch
    from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.utils import logging as hf_logging

    if vocab_layout not in VOCAB_LAYOUTS:
        raise ValueError(f"vocab_layout must be one of {VOCAB_LAYOUTS}, got {vocab_layout!r}")
    if any(i >= vision_depth for i in deepstack_visual_indexes) or len(deepstack_visual_indexes) > num_layers:
        raise ValueError(
            f"deepstack_visual_indexes {deepstack_visual_indexes} must be vision blocks (< {vision_depth}) and at "
            f"most num_layers ({num_layers}) of them"
        )
    head_dim = hidden_size // num_heads
    if hidden_size % num_heads or head_dim % 2 or head_dim < 6:
        raise ValueError(f"hidden_size {hidden_size} must split into {num_heads} heads of an even head_dim >= 6")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer()
    processor = build_tiny_qwen3_vl_processor(tokenizer)
    num_tokens = len(tokenizer)
    if vocab_size is None:
        vocab_size = _padded(num_tokens) if vocab_layout == "padded" else num_tokens
    elif vocab_size < num_tokens:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the tokenizer ({num_tokens} tokens)")
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in (
        ("pad", "<|endoftext|>"), ("eos", "<|im_end|>"), ("image", "<|image_pad|>"), ("video", "<|video_pad|>"),
        ("vision_start", "<|vision_start|>"), ("vision_end", "<|vision_end|>"),
    )}
    half = head_dim // 2
    section = [half - 2 * (half // 3), half // 3, half // 3]
    config = Qwen3VLConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": hidden_size,
            "intermediate_size": 2 * hidden_size,
            "num_hidden_layers": num_layers,
            "num_attention_heads": num_heads,
            "num_key_value_heads": num_kv_heads,
            "head_dim": head_dim,
            "max_position_embeddings": 32768,
            "rope_parameters": {
                "rope_type": "default", "rope_theta": 5000000.0, "mrope_section": section, "mrope_interleaved": True,
            },
            "bos_token_id": ids["pad"],
            "eos_token_id": ids["eos"],
            "pad_token_id": ids["pad"],
            "tie_word_embeddings": False,
            "dtype": "float32",
        },
        vision_config={
            "depth": vision_depth,
            "hidden_size": vision_hidden_size,
            "intermediate_size": 2 * vision_hidden_size,
            "num_heads": vision_num_heads,
            "patch_size": QWEN3_PATCH_SIZE,
            "spatial_merge_size": QWEN3_MERGE_SIZE,
            "temporal_patch_size": QWEN3_TEMPORAL_PATCH_SIZE,
            "out_hidden_size": hidden_size,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": list(deepstack_visual_indexes),
        },
        image_token_id=ids["image"],
        video_token_id=ids["video"],
        vision_start_token_id=ids["vision_start"],
        vision_end_token_id=ids["vision_end"],
        tie_word_embeddings=False,
        dtype="float32",
    )
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Qwen3VLForConditionalGeneration(config).to(torch.float32).eval()
        model.generation_config = GenerationConfig(
            bos_token_id=ids["pad"], eos_token_id=[ids["eos"], ids["pad"]], pad_token_id=ids["pad"], do_sample=False
        )
        model.save_pretrained(out, safe_serialization=True)
        processor.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        hf_logging.set_verbosity(verbosity)
    return str(out)


# ---------------------------------------------------------------------------------------------------------------
# The dispatcher
# ---------------------------------------------------------------------------------------------------------------


def _qwen2(arch: str) -> Callable[..., str]:
    def build(output_dir, seed: int = 0, vocab_layout: str = "padded", **kwargs) -> str:
        return build_tiny_model(output_dir, arch=arch, seed=seed, vocab_layout=vocab_layout, **kwargs)

    return build


#: Builder key (``VideoFamily.tiny_builder``, or an architecture of a family) -> builder.
FAMILY_BUILDERS: dict[str, Callable[..., str]] = {
    "qwen2_vl": _qwen2("qwen2_vl"),
    "qwen2_5_vl": _qwen2("qwen2_5_vl"),
    "qwen3_vl": build_tiny_qwen3_vl,
    "intern_vl": build_tiny_intern_vl,
    "llava_next_video": build_tiny_llava_next_video,
}


def build_tiny_family_model(key: str, output_dir: str | os.PathLike[str], **kwargs) -> str:
    r"""Build the tiny model of builder ``key`` (see :data:`FAMILY_BUILDERS`) into ``output_dir``."""
    if key not in FAMILY_BUILDERS:
        raise ValueError(f"no tiny builder {key!r}; known: {sorted(FAMILY_BUILDERS)}")
    return FAMILY_BUILDERS[key](output_dir, **kwargs)
