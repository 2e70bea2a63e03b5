"""Tiny offline InternVL and LLaVA-NeXT-Video checkpoints (random weights, real classes, trained-here tokenizers).

Each builder writes a complete Hugging Face directory that the stock LlamaFactory loader opens with the family's
template, like :func:`llamafactory_video.testing.tiny_model.build_tiny_model` does for Qwen2-VL:

* :func:`build_tiny_intern_vl` -- ``InternVLForConditionalGeneration`` (InternVL vision tower, pixel-shuffle
  projector, Qwen2 text model), ``InternVLProcessor`` (``GotOcr2ImageProcessor`` + ``InternVLVideoProcessor``) and a
  ``Qwen2Tokenizer`` (the project's tiny BPE) with InternVL's ``<img>`` / ``</img>`` / ``<IMG_CONTEXT>`` / ``<video>``
  tokens; template ``intern_vl``. A 56 x 56 frame is 4 x 4 patches of 14 px, pixel-shuffled (0.5) to 4 tokens.
* :func:`build_tiny_llava_next_video` -- ``LlavaNextVideoForConditionalGeneration`` (CLIP vision tower, 2-layer
  projector, average-pool resampler of stride 2, Llama text model), ``LlavaNextVideoProcessor``
  (``LlavaNextImageProcessor`` + ``LlavaNextVideoVideoProcessor``) and a ``LlamaTokenizer`` (byte-fallback BPE with
  Llama's metaspace pre-tokenizer, trained here on the same corpus) with ``<image>`` / ``<video>``; template
  ``llava_next_video``. A 56 x 56 frame is 4 x 4 CLIP patches, pooled in the model to 2 x 2 = 4 video tokens.

``vocab_layout="padded"`` leaves spare embedding rows after the tokenizer (as the released Qwen checkpoints do);
``"exact"`` gives exactly ``len(tokenizer)`` rows, as the released InternVL-hf and LLaVA-NeXT-Video-hf checkpoints
do: adding a token such as ``<ACTION>`` then resizes the embedding.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Literal

from .tiny_model import VOCAB_LAYOUTS, _padded_vocab_size, build_corpus, build_tiny_tokenizer


__all__ = [
    "INTERN_VL_TOKENS",
    "build_tiny_intern_vl",
    "build_tiny_llama_tokenizer",
    "build_tiny_llava_next_video",
]

VocabLayout = Literal["padded", "exact"]

#: InternVL's media tokens, as the released ``-hf`` tokenizers name them (``extra_special_tokens``).
INTERN_VL_TOKENS: dict[str, str] = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}
_FRAME = 56  # frame side in pixels: 4 x 4 patches of 14 px
_PATCH = 14


def _vocab_size(num_tokens: int, layout: str) -> int:
    if layout not in VOCAB_LAYOUTS:
        raise ValueError(f"vocab_layout must be one of {VOCAB_LAYOUTS}, got {layout!r}")
    return _padded_vocab_size(num_tokens) if layout == "padded" else num_tokens


def _text_config(vocab_size: int, hidden_size: int, num_layers: int, ids: dict[str, int]) -> dict[str, Any]:
    return {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "bos_token_id": ids["bos"],
        "eos_token_id": ids["eos"],
        "pad_token_id": ids["pad"],
        "tie_word_embeddings": False,
        "dtype": "float32",
    }


def _save(out: Path, model_cls: Any, config: Any, seed: int, processor: Any, tokenizer: Any, ids: dict) -> str:
    import torch
    from transformers import GenerationConfig
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_cls(config).to(torch.float32).eval()
        model.generation_config = GenerationConfig(
            bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"], do_sample=False
        )
        model.save_pretrained(out, safe_serialization=True)
        processor.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        hf_logging.set_verbosity(verbosity)
    return str(out)


# --------------------------------------------------------------------------------------
# InternVL
# --------------------------------------------------------------------------------------


def _intern_vl_tokenizer(out: Path) -> Any:
    r"""The project's tiny Qwen2 BPE plus InternVL's media tokens, reloaded so that ``tokenizer.start_image_token``
    etc. exist (``InternVLProcessor`` reads them)."""
    from transformers import AutoTokenizer

    tokenizer = build_tiny_tokenizer()
    tokenizer.add_special_tokens(
        {"additional_special_tokens": list(INTERN_VL_TOKENS.values())}, replace_extra_special_tokens=False
    )
    tokenizer.save_pretrained(out)
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text())
    config["extra_special_tokens"] = dict(INTERN_VL_TOKENS)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False))
    return AutoTokenizer.from_pretrained(out)


def build_tiny_intern_vl(
    output_dir: str | os.PathLike[str],
    seed: int = 0,
    vocab_layout: VocabLayout = "padded",
    hidden_size: int = 48,
    num_layers: int = 2,
) -> str:
    r"""Write a tiny random InternVL (template ``intern_vl``) to ``output_dir``; returns the directory.

    Vision: InternVL ViT, 2 layers, width 32, 2 heads, 56 px images of 14 px patches, pixel shuffle 0.5 ->
    ``image_seq_length`` 4 tokens per frame. Text: Qwen2, ``hidden_size`` wide, ``num_layers`` layers.
    """
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _intern_vl_tokenizer(out)
    seq = (_FRAME // _PATCH) ** 2 // 4
    size = {"height": _FRAME, "width": _FRAME}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False, min_patches=1, max_patches=4),
        tokenizer=tokenizer,
        video_processor=InternVLVideoProcessor(size=size),
        image_seq_length=seq,
    )
    ids = {
        "bos": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "pad": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos": tokenizer.convert_tokens_to_ids("<|im_end|>"),
    }
    config = InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "image_size": _FRAME,
            "patch_size": _PATCH,
        },
        text_config={"model_type": "qwen2", **_text_config(_vocab_size(len(tokenizer), vocab_layout), hidden_size,
                                                            num_layers, ids)},
        image_token_id=tokenizer.convert_tokens_to_ids(INTERN_VL_TOKENS["context_image_token"]),
        image_seq_length=seq,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
        dtype="float32",
    )
    return _save(out, InternVLForConditionalGeneration, config, seed, processor, tokenizer, ids)


# --------------------------------------------------------------------------------------
# LLaVA-NeXT-Video
# --------------------------------------------------------------------------------------


def build_tiny_llama_tokenizer(bpe_vocab_size: int = 2048) -> Any:
    r"""A ``LlamaTokenizer`` (byte-fallback BPE, metaspace ``▁``) trained on the project's corpus; ``<unk>`` /
    ``<s>`` / ``</s>`` are ids 0-2 and the 256 ``<0xNN>`` byte tokens follow, as in Llama 2's vocabulary."""
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer
    from transformers import LlamaTokenizer

    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    raw = Tokenizer(BPE(unk_token="<unk>", byte_fallback=True))
    raw.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    trainer = BpeTrainer(vocab_size=bpe_vocab_size, min_frequency=1, show_progress=False, special_tokens=specials)
    raw.train_from_iterator(build_corpus(), trainer=trainer)
    state = json.loads(raw.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tokenizer = LlamaTokenizer(vocab=state["vocab"], merges=merges, add_prefix_space=True)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    tokenizer.pad_token = "<unk>"  # as llava-hf/LLaVA-NeXT-Video-7B-hf
    for i, token in enumerate(("<unk>", "<s>", "</s>")):
        if tokenizer.convert_tokens_to_ids(token) != i:
            raise RuntimeError(f"{token} got id {tokenizer.convert_tokens_to_ids(token)}, expected {i}")
    return tokenizer


def build_tiny_llava_next_video(
    output_dir: str | os.PathLike[str],
    seed: int = 0,
    vocab_layout: VocabLayout = "padded",
    hidden_size: int = 48,
    num_layers: int = 2,
) -> str:
    r"""Write a tiny random LLaVA-NeXT-Video (template ``llava_next_video``) to ``output_dir``; returns the directory.

    Vision: CLIP, 2 layers, width 32, 2 heads, 56 px frames of 14 px patches (+ CLS, dropped by the ``default``
    feature strategy), average-pooled in the model with stride 2: 4 tokens per frame. Text: Llama.
    """
    from transformers import (
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_llama_tokenizer()
    crop = {"height": _FRAME, "width": _FRAME}
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size={"shortest_edge": _FRAME}, crop_size=crop),
        image_processor=LlavaNextImageProcessor(
            size={"shortest_edge": _FRAME}, crop_size=crop, image_grid_pinpoints=[[_FRAME, _FRAME]]
        ),
        tokenizer=tokenizer,
        patch_size=_PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    ids = {"bos": 1, "eos": 2, "pad": 0}
    config = LlavaNextVideoConfig(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": _FRAME,
            "patch_size": _PATCH,
            "projection_dim": 32,
        },
        text_config={"model_type": "llama", **_text_config(_vocab_size(len(tokenizer), vocab_layout), hidden_size,
                                                            num_layers, ids)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1,
        image_grid_pinpoints=[[_FRAME, _FRAME]],
        image_seq_length=(_FRAME // _PATCH) ** 2,
        video_seq_length=(_FRAME // _PATCH) ** 2 // 4,
        tie_word_embeddings=False,
        dtype="float32",
    )
    return _save(out, LlavaNextVideoForConditionalGeneration, config, seed, processor, tokenizer, ids)


#: family -> builder(output_dir, seed=, vocab_layout=) of this module
BUILDERS: dict[str, Callable[..., str]] = {
    "intern_vl": build_tiny_intern_vl,
    "llava_next_video": build_tiny_llava_next_video,
}
