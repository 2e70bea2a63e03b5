"""Tiny offline checkpoints for the auxiliary models of the QA tools: a sentence embedder and Whisper.

Like :mod:`llamafactory_video.testing.tiny_model`, nothing is downloaded: tokenizers are built from the
built-in corpus, weights are random (seeded). They exercise the code paths (``--embedder``, ``--whisper``),
not the quality.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .tiny_model import build_corpus


def _words() -> list[str]:
    words = sorted({w for line in build_corpus() for w in re.findall(r"[a-z0-9]+", line.lower())})
    return words


def build_tiny_embedder(output_dir: str, seed: int = 0, hidden_size: int = 32) -> str:
    r"""A 2-layer BERT (``AutoModel``) with a WordPiece vocabulary of the corpus words (``AutoTokenizer``)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_words()]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(out / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(out))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=256,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        BertModel(config).save_pretrained(str(out))
    finally:
        torch.random.set_rng_state(state)
    return str(out)


WHISPER_SPECIALS = (
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)


def build_tiny_whisper(output_dir: str, seed: int = 0, d_model: int = 32) -> str:
    r"""A 1+1 layer Whisper with a byte-level BPE tokenizer trained on the corpus, the Whisper special tokens
    (``<|notimestamps|>`` followed by the 1501 ``<|0.00|>`` .. ``<|30.00|>`` timestamp tokens, as Whisper's
    timestamp decoding expects), an 80-bin ``WhisperFeatureExtractor`` and an English-only generation config."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(build_corpus(), vocab_size=600, min_frequency=1, show_progress=False)
    bpe.save_model(str(out))  # vocab.json + merges.txt
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    vocab["<|endoftext|>"] = len(vocab)
    merges = [
        tuple(line.split())
        for line in (out / "merges.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    tokenizer = WhisperTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(WHISPER_SPECIALS[1:])})
    tokenizer.add_tokens(timestamps)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in WHISPER_SPECIALS}
    extractor = WhisperFeatureExtractor(feature_size=80)
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(str(out))
    vocab_size = len(tokenizer)
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=80,
        d_model=d_model,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_source_positions=1500,
        max_target_positions=64,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = WhisperForConditionalGeneration(config)
    finally:
        torch.random.set_rng_state(state)
    generation = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=False,
        max_length=32,
        max_initial_timestamp_index=50,
        begin_suppress_tokens=[ids["<|endoftext|>"]],
        suppress_tokens=[],
    )
    model.generation_config = generation
    model.save_pretrained(str(out))
    with open(out / "tiny_whisper.json", "w", encoding="utf-8") as f:
        json.dump({"special_token_ids": ids, "vocab_size": vocab_size}, f, indent=2)
    return os.fspath(out)
