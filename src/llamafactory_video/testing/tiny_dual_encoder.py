"""Build tiny, randomly initialised CLIP / SigLIP dual encoders fully offline (tests and the ``sparc_align`` demo).

The directory written is a complete Hugging Face checkpoint: a real ``CLIPTokenizer`` (CLIP's own normaliser,
pre-tokenizer and ``</w>`` BPE, learnt here by a deterministic pure-Python BPE on the plugin's built-in
English corpus plus the colour / shape / position words of
:func:`~llamafactory_video.testing.synthetic_videos.make_alignment_dataset`, so every build gives byte-identical
tokenizer files), a
``CLIPImageProcessor`` / ``SiglipImageProcessor`` built directly with a small resolution, a processor config and
float32 safetensors weights. It loads with ``AutoModel`` / ``AutoProcessor`` like a released checkpoint.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from .tiny_model import build_corpus

__all__ = ["build_tiny_clip_tokenizer", "build_tiny_dual_encoder"]

Kind = Literal["clip", "siglip", "xclip"]

_EXTRA_WORDS = [
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "cyan",
    "white",
    "square",
    "circle",
    "triangle",
    "diamond",
    "cross",
    "ring",
    "left",
    "right",
    "top",
    "bottom",
    "middle",
    "centre",
    "center",
    "corner",
    "on",
    "at",
    "in",
    "the",
    "of",
    "a",
    "an",
    "and",
    "is",
]


def _alignment_corpus() -> list[str]:
    from .synthetic_videos import ALIGNMENT_COLOURS, ALIGNMENT_POSITIONS, ALIGNMENT_SHAPES

    lines = []
    for colour, _ in ALIGNMENT_COLOURS:
        for shape in ALIGNMENT_SHAPES:
            for position, _ in ALIGNMENT_POSITIONS:
                lines.append(f"a {colour} {shape} {position}")
                lines.append(f"the {shape} {position} is {colour}")
    return lines * 4 + [" ".join(_EXTRA_WORDS)] * 8


def train_bpe(words: dict[str, int], num_merges: int, suffix: str = "</w>") -> list[tuple[str, str]]:
    r"""Deterministic BPE merges over ``{pre-token: count}``: each step merges the most frequent adjacent pair, ties
    broken by the lexicographically smallest pair, the last symbol of every word carrying ``suffix``.

    ``tokenizers``' ``BpeTrainer`` breaks count ties by internal ids that depend on hash-map order, so the same corpus
    gives different merges (and ids) from one process to the next; this pure-Python loop does not.
    """
    from collections import defaultdict

    symbols = [list(word[:-1]) + [word[-1] + suffix] for word in sorted(words)]
    counts = [words[word] for word in sorted(words)]
    pair_count: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)

    def account(index: int, sign: int) -> None:
        sym = symbols[index]
        for pair in zip(sym, sym[1:]):
            pair_count[pair] += sign * counts[index]
            if sign > 0:
                where[pair].add(index)

    for index in range(len(symbols)):
        account(index, 1)
    merges: list[tuple[str, str]] = []
    while len(merges) < num_merges:
        live = [(count, pair) for pair, count in pair_count.items() if count > 0]
        if not live:
            break
        best_count = max(count for count, _ in live)
        best = min(pair for count, pair in live if count == best_count)
        merges.append(best)
        merged = best[0] + best[1]
        for index in sorted(where.pop(best)):
            sym = symbols[index]
            if not any(pair == best for pair in zip(sym, sym[1:])):
                continue
            account(index, -1)
            out, i = [], 0
            while i < len(sym):
                if i + 1 < len(sym) and (sym[i], sym[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            symbols[index] = out
            account(index, 1)
        pair_count.pop(best, None)
    return merges


def build_tiny_clip_tokenizer(vocab_size: int = 1024, model_max_length: int = 32) -> Any:
    r"""A ``CLIPTokenizer`` (CLIP's exact normaliser, pre-tokenizer and ``</w>`` byte-level BPE) whose vocabulary is
    built deterministically from the built-in corpus: the two special tokens, the 256 byte symbols and their ``</w>``
    forms in sorted order, then the merges of :func:`train_bpe`. The same on every machine and in every process."""
    from collections import Counter

    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    bos, eos, suffix = "<|startoftext|>", "<|endoftext|>", "</w>"
    seed = CLIPTokenizer(model_max_length=model_max_length)  # CLIP's normaliser / pre-tokenizer, empty vocab
    raw = seed.backend_tokenizer
    words: Counter[str] = Counter()
    for line in build_corpus() + _alignment_corpus():
        text = raw.normalizer.normalize_str(line)
        words.update(piece for piece, _ in raw.pre_tokenizer.pre_tokenize_str(text))
    alphabet = sorted(ByteLevel.alphabet())
    tokens = [bos, eos] + alphabet + [c + suffix for c in alphabet]
    merges = train_bpe(dict(words), vocab_size - len(tokens), suffix)
    vocab = {token: i for i, token in enumerate(tokens)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


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
    num_frames: int = 4,
    intermediate_size: int | None = None,
    text_hidden_size: int | None = None,
    text_num_layers: int | None = None,
    text_num_heads: int | None = None,
    text_intermediate_size: int | None = None,
    text_vocab_size: int | None = None,
) -> str:
    r"""Write a tiny random ``kind`` (``clip``, ``siglip`` or ``xclip``) checkpoint to ``output_dir``; returns the
    directory.

    Args:
        output_dir: destination (created).
        kind: ``clip`` (``CLIPModel`` + ``CLIPProcessor``), ``siglip`` (``SiglipModel`` + ``SiglipProcessor``) or
            ``xclip`` (``XCLIPModel`` + ``XCLIPProcessor`` around a ``CLIPImageProcessor``: ``num_frames`` frames,
            one multi-frame integration layer, one prompt-generator layer).
        image_size / patch_size: frame resolution after the image processor and ViT patch size
            (``(image_size / patch_size)^2`` patches per frame).
        hidden_size / projection_dim / num_layers / num_heads: tower sizes (both towers alike).
        seed: weight initialisation seed.
        num_frames: X-CLIP only, the frame count its cross-frame attention and ``mit`` are built for.
        intermediate_size: MLP width of the vision tower (default ``2 * hidden_size``; of both towers unless
            ``text_intermediate_size`` is given).
        text_hidden_size / text_num_layers / text_num_heads / text_intermediate_size: the text tower's sizes when
            they differ from the vision tower's (default: the same). CLIP ViT-B/16: vision 768 wide, 12 layers,
            12 heads, MLP 3072, image 224, patch 16; text 512 wide, 12 layers, 8 heads, MLP 2048; projection 512.
        text_vocab_size: text embedding rows (default ``len(tokenizer)``; the released CLIP has 49,408; rows past
            the tokenizer are never used).
    """
    import torch

    os.makedirs(output_dir, exist_ok=True)
    torch.manual_seed(seed)
    tokenizer = build_tiny_clip_tokenizer()
    common = dict(
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
    )
    if text_intermediate_size is None:
        text_intermediate_size = 2 * text_hidden_size if text_hidden_size else common["intermediate_size"]
    text_common = dict(
        hidden_size=text_hidden_size or hidden_size,
        intermediate_size=text_intermediate_size,
        num_hidden_layers=text_num_layers or num_layers,
        num_attention_heads=text_num_heads or num_heads,
    )
    text_vocab = max(text_vocab_size or 0, len(tokenizer))
    if kind == "clip":
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

        config = CLIPConfig(
            text_config=dict(
                vocab_size=text_vocab,
                max_position_embeddings=tokenizer.model_max_length,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **text_common,
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
                vocab_size=text_vocab,
                max_position_embeddings=tokenizer.model_max_length,
                projection_size=projection_dim,
                **text_common,
            ),
            vision_config=dict(image_size=image_size, patch_size=patch_size, **common),
        )
        model = SiglipModel(config)
        image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
        processor = SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    elif kind == "xclip":
        from transformers import CLIPImageProcessor, XCLIPConfig, XCLIPModel, XCLIPProcessor

        config = XCLIPConfig(
            text_config=dict(
                vocab_size=text_vocab,
                max_position_embeddings=tokenizer.model_max_length,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **text_common,
            ),
            vision_config=dict(
                image_size=image_size,
                patch_size=patch_size,
                num_frames=num_frames,
                mit_hidden_size=projection_dim,  # the mit runs on the projected frame embeddings
                mit_intermediate_size=projection_dim * 2,
                mit_num_hidden_layers=1,
                mit_num_attention_heads=num_heads,
                **common,
            ),
            projection_dim=projection_dim,
            prompt_layers=1,
            prompt_num_attention_heads=num_heads,
        )
        model = XCLIPModel(config)
        image_processor = CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        )
        processor = XCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    else:
        raise ValueError(f"kind must be clip, siglip or xclip, got {kind!r}")
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    return str(output_dir)
