"""Build tiny, randomly initialised CLIP / SigLIP dual encoders fully offline (tests and the ``sparc_align`` demo).

The directory written is a complete Hugging Face checkpoint: a real ``CLIPTokenizer`` (CLIP's own normaliser,
pre-tokenizer and ``</w>`` BPE, trained here on the plugin's built-in English corpus plus the colour / shape /
position words of :func:`~llamafactory_video.testing.synthetic_videos.make_alignment_dataset`), a
``CLIPImageProcessor`` / ``SiglipImageProcessor`` built directly with a small resolution, a processor config and
float32 safetensors weights. It loads with ``AutoModel`` / ``AutoProcessor`` like a released checkpoint.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from .tiny_model import build_corpus

__all__ = ["build_tiny_clip_tokenizer", "build_tiny_dual_encoder"]

Kind = Literal["clip", "siglip"]

_EXTRA_WORDS = ["red", "green", "blue", "yellow", "purple", "orange", "cyan", "white", "square", "circle", "triangle", "diamond", "cross", "ring", "left", "right", "top", "bottom", "middle", "centre", "center", "corner", "on", "at", "in", "the", "of", "a", "an", "and", "is"]


def _alignment_corpus() -> list[str]:
    from .synthetic_videos import ALIGNMENT_COLOURS, ALIGNMENT_POSITIONS, ALIGNMENT_SHAPES

    lines = []
    for colour, _ in ALIGNMENT_COLOURS:
        for shape in ALIGNMENT_SHAPES:
            for position, _ in ALIGNMENT_POSITIONS:
                lines.append(f"a {colour} {shape} {position}")
                lines.append(f"the {shape} {position} is {colour}")
    return lines * 4 + [" ".join(_EXTRA_WORDS)] * 8


def build_tiny_clip_tokenizer(vocab_size: int = 1024, model_max_length: int = 32) -> Any:
    r"""A ``CLIPTokenizer`` whose BPE is trained offline on the built-in corpus (CLIP's exact pipeline)."""
    import json

    from tokenizers.trainers import BpeTrainer
    from transformers import CLIPTokenizer

    bos, eos = "<|startoftext|>", "<|endoftext|>"
    seed = CLIPTokenizer(model_max_length=model_max_length)  # CLIP's normaliser / pre-tokenizer, empty vocab
    raw = seed.backend_tokenizer
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        special_tokens=[bos, eos],
        end_of_word_suffix="</w>",
        initial_alphabet=__import__("tokenizers").pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(build_corpus() + _alignment_corpus(), trainer=trainer)
    state = json.loads(raw.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    return CLIPTokenizer(vocab=state["vocab"], merges=merges, model_max_length=model_max_length)


def build_tiny_dual_encoder(
    output_dir: str | os.PathLike[str],
    kind: Kind = "clip",
    image_size: int = 32,
    patch_size: int = 8,
    hidden_size: int = 64,
    projection_dim: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> str:
    r"""Write a tiny random ``kind`` (``clip`` or ``siglip``) checkpoint to ``output_dir``; returns the directory.

    Args:
        output_dir: destination (created).
        kind: ``clip`` (``CLIPModel`` + ``CLIPProcessor``) or ``siglip`` (``SiglipModel`` + ``SiglipProcessor``).
        image_size / patch_size: frame resolution after the image processor and ViT patch size
            (``(image_size / patch_size)^2`` patches per frame).
        hidden_size / projection_dim / num_layers / num_heads: tower sizes (both towers alike).
        seed: weight initialisation seed.
    """
    import torch

    os.makedirs(output_dir, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = build_tiny_clip_tokenizer()
    common = dict(
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
    )
    if kind == "clip":
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

        config = CLIPConfig(
            text_config=dict(
                vocab_size=len(tokenizer),
                max_position_embeddings=tokenizer.model_max_length,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **common,
            ),
            vision_config=dict(image_size=image_size, patch_size=patch_size, **common),
            projection_dim=projection_dim,
        )
        model = CLIPModel(config)
        image_processor = CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        )
        processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    elif kind == "siglip":
        from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

        config = SiglipConfig(
            text_config=dict(
                vocab_size=len(tokenizer),
                max_position_embeddings=tokenizer.model_max_length,
                projection_size=projection_dim,
                **common,
            ),
            vision_config=dict(image_size=image_size, patch_size=patch_size, **common),
        )
        model = SiglipModel(config)
        image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
        processor = SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    else:
        raise ValueError(f"kind must be clip or siglip, got {kind!r}")
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return str(output_dir)
