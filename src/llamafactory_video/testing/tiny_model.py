"""Build tiny, randomly initialised Qwen2-VL / Qwen2.5-VL checkpoints fully offline.

The produced directory is a complete Hugging Face checkpoint: a real byte-level BPE
``Qwen2Tokenizer`` (trained here on a small built-in English corpus, with the exact
special-token strings of the released Qwen2-VL tokenizer), a real ``Qwen2VLProcessor`` /
``Qwen2_5_VLProcessor`` (``Qwen2VLImageProcessor`` + ``Qwen2VLVideoProcessor``) with
small pixel limits, the Qwen2-VL-Instruct chat template, a float32 safetensors model and a
``generation_config.json``.  It loads with the ``transformers`` Auto classes and with the
stock LlamaFactory loader (``template: qwen2_vl``).

Nothing is downloaded: the tokenizer is trained in-process and the weights are random
(seeded), so the checkpoint is only useful for plumbing tests and demos.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ARCHITECTURES",
    "CHAT_TEMPLATE",
    "QWEN2_VL_SPECIAL_TOKENS",
    "VOCAB_LAYOUTS",
    "build_corpus",
    "build_tiny_model",
    "build_tiny_processor",
    "build_tiny_tokenizer",
]

Arch = Literal["qwen2_5_vl", "qwen2_vl"]
VocabLayout = Literal["padded", "exact"]
#: Embedding layouts of :func:`build_tiny_model`: spare rows after the tokenizer's tokens, or none.
VOCAB_LAYOUTS: tuple[str, ...] = ("padded", "exact")

#: Supported architectures (``arch`` argument of :func:`build_tiny_model`).
ARCHITECTURES: tuple[str, ...] = ("qwen2_5_vl", "qwen2_vl")

#: Special tokens of the released Qwen2-VL tokenizer, in their original id order
#: (151643 ... 151656 in the real vocabulary; here they directly follow the BPE vocab).
QWEN2_VL_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: Qwen2-VL-Instruct style chat template. Message content may be a string or a list of
#: ``{"type": "text" | "image" | "video", ...}`` parts; images and videos become
#: ``<|vision_start|><|image_pad|><|vision_end|>`` / ``...<|video_pad|>...`` placeholders
#: that the processor expands to the right number of tokens.
CHAT_TEMPLATE: str = (
    "{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Pixel limits of the tiny processor: a frame is resized to at most 112x112 (4x4 patches of
# 14 px -> 2x2 = 4 LLM tokens per temporal patch) and at least 56x56.
_MIN_PIXELS = 56 * 56
_MAX_PIXELS = 112 * 112
_PATCH_SIZE = 14
_MERGE_SIZE = 2
_TEMPORAL_PATCH_SIZE = 2
_DEFAULT_BPE_VOCAB = 2048
_SPARE_ROWS = 64

# --------------------------------------------------------------------------------------
# Built-in training corpus
# --------------------------------------------------------------------------------------

_COLOURS = (
    "red green blue yellow purple orange cyan white black grey gray pink brown magenta "
    "violet golden silver dark light bright pale"
)
_SHAPES = (
    "square circle triangle diamond cross ring ellipse bar star rectangle hexagon oval "
    "line dot box ball cube sphere arrow heart shape object"
)
_DIRECTIONS = (
    "right left up down upward downward forward backward across around away toward "
    "towards diagonally clockwise counterclockwise top bottom center middle corner side"
)
_MOTIONS = (
    "moves moving move moved slides sliding slide drifts drifting floats floating "
    "bounces bouncing rolls rolling spins spinning rotates rotating falls falling rises "
    "rising jumps jumping runs running walks walking travels traveling shifts shifting "
    "stays still stops quickly slowly steadily"
)
_ACTIONS = (
    "action actions activity performed performing perform doing does playing plays "
    "throwing throws catching catches kicking kicks hitting hits swimming swims dancing "
    "dances climbing climbs riding rides cooking cooks eating eats drinking drinks reading "
    "reads writing writes singing sings clapping waving waves pushing pushes pulling pulls "
    "lifting lifts opening opens closing closes cutting cuts painting paints typing "
    "sitting sits standing stands lying holding holds carrying carries watching watches "
    "talking talks laughing smiling cleaning washing brushing stretching skipping "
    "skating skiing surfing boxing wrestling fishing driving flying gesture"
)
_SPORTS = (
    "sport sports football soccer basketball tennis baseball volleyball golf hockey "
    "cricket rugby badminton boxing cycling running swimming archery bowling skiing "
    "surfing skateboarding gymnastics yoga match game team player players goal score "
    "ball court field race coach referee"
)
_PEOPLE = (
    "person people man men woman women child children boy girl kid baby player athlete "
    "dancer chef teacher student worker driver friend family crowd someone nobody he she "
    "they his her their hand hands arm arms leg legs head face body"
)
_OBJECTS = (
    "table chair door window car bike bicycle bus train phone camera cup glass bottle "
    "book pen paper bag box knife fork spoon plate bowl guitar piano drum racket bat "
    "rope tree house road room kitchen street park water wall floor screen frame video "
    "image picture clip scene dog cat horse bird fish"
)
_GENERIC = (
    "the a an this that these those is are was were be been being has have had do "
    "what which who where when why how in on at of to from with by for over under into "
    "onto through between behind near far and or but not no yes it its there here then "
    "than very more most some many few all each every one two three four five six seven "
    "eight nine ten first second last next frame frames time times second seconds start "
    "end begins ends shown shows appears happens visible answer question describe "
    "describes description label class category can could should would will may might "
    "assistant user system helpful please thank thanks you your we our i me my"
)

_SENTENCES = (
    "What action is being performed in this video?",
    "What is happening in this video?",
    "Describe the video in one sentence.",
    "Describe what you see in the clip.",
    "Which direction does the object move?",
    "What colour is the shape?",
    "What shape is shown in the video?",
    "You are a helpful assistant.",
    "A man is playing guitar in a small room.",
    "A woman is riding a bicycle down the street.",
    "Two children are playing football in the park.",
    "The player kicks the ball toward the goal.",
    "A dog runs across the field and catches the ball.",
    "The chef is cutting vegetables in the kitchen.",
    "A girl is reading a book near the window.",
    "The team is celebrating after the match.",
    "A boy throws the ball and his friend catches it.",
    "Someone is opening the door slowly.",
    "The camera shows a busy road with many cars.",
    "A person is swimming in the water.",
    "The athlete is running on the track.",
    "A woman is dancing on the stage.",
    "The man is lifting a heavy box.",
    "A student is writing on a piece of paper.",
    "The crowd is watching the game.",
    "A bird is flying over the trees.",
    "The cat is sitting on the table.",
    "A worker is cleaning the floor.",
    "The children are clapping their hands.",
    "A person waves at the camera.",
    "The ball bounces up and down.",
    "The video shows a red square moving to the right.",
    "In the first frame the object is on the left side.",
    "In the last frame the object is on the right side.",
    "The shape stays in the middle of the screen.",
    "It is a short clip with eight frames.",
    "Thank you, that is a good question.",
    "Yes, the answer is correct.",
    "No, the object does not move.",
    "Hello, how can I help you today?",
)

# Colour / shape / direction vocabulary of the synthetic action task; their sentences are
# repeated many times so each word becomes a single BPE token.
_TASK_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "white")
_TASK_SHAPES = ("square", "circle", "triangle", "diamond", "cross", "ring", "ellipse", "bar")
_TASK_DIRECTIONS = (
    "right",
    "left",
    "up",
    "down",
    "up and right",
    "down and left",
    "up and left",
    "down and right",
)


def _inflections(word: str) -> list[str]:
    """Return simple English inflections of a word (to enrich the corpus vocabulary)."""
    forms = [word, word.capitalize()]
    if len(word) < 3 or word.endswith(("s", "ing", "ed", "ly")):
        return forms
    forms.append(word + "s")
    if word.endswith("e"):
        forms += [word[:-1] + "ing", word + "d"]
    else:
        forms += [word + "ing", word + "ed"]
    return forms


def build_corpus() -> list[str]:
    """Return the deterministic built-in English training corpus (a list of lines).

    It mixes generic English sentences, vocabulary lines about colours, shapes, motions,
    actions, sports, people and objects, and many repetitions of the synthetic action-task
    prompt and answers (``"The red square moves right."``) so those words become single
    tokens.
    """
    lines: list[str] = list(_SENTENCES)
    for group in (_COLOURS, _SHAPES, _DIRECTIONS, _MOTIONS, _ACTIONS, _SPORTS, _PEOPLE, _OBJECTS, _GENERIC):
        words = group.split()
        lines.append(" ".join(words))
        lines.append(" ".join(w.capitalize() for w in words))
        for start in range(0, len(words), 6):
            chunk = words[start : start + 6]
            lines.append(" ".join(form for w in chunk for form in _inflections(w)))
    for i, colour in enumerate(_TASK_COLOURS):
        for j, shape in enumerate(_TASK_SHAPES):
            direction = _TASK_DIRECTIONS[(i + j) % len(_TASK_DIRECTIONS)]
            lines.append(f"The {colour} {shape} moves {direction}.")
            lines.append(f"A {colour} {shape} is moving {direction} across the frame.")
            lines.append(f"{colour}_{shape}_moves_{direction.replace(' ', '_')}")
    # Give the task sentences a high frequency (cheap: training sees word counts only).
    lines.extend(lines[-3 * len(_TASK_COLOURS) * len(_TASK_SHAPES) :] * 8)
    lines.extend(["What action is being performed in this video?"] * 32)
    # Chat-format role names appear right after <|im_start|> (no leading space).
    lines.extend(["system\nYou are a helpful assistant.", "user\nHello", "assistant\nHello"] * 16)
    lines.extend([f"{n} {n * 7} {n * 13}.{n % 10}" for n in range(100)])
    lines.append("Punctuation: , . ; : ! ? ' \" ( ) [ ] { } < > / \\ | - _ + = * & ^ % $ # @ ~ `")
    return lines


# --------------------------------------------------------------------------------------
# Tokenizer / processor
# --------------------------------------------------------------------------------------


def build_tiny_tokenizer(bpe_vocab_size: int = _DEFAULT_BPE_VOCAB) -> Any:
    """Train a byte-level BPE on the built-in corpus and wrap it as a ``Qwen2Tokenizer``.

    The pre-tokenizer, normalizer and decoder are exactly Qwen2's (NFC, Qwen2 split regex,
    ByteLevel). The Qwen2-VL special tokens are appended after the BPE vocabulary in their
    original order; ``eos_token`` is ``<|im_end|>`` and ``pad_token`` ``<|endoftext|>`` as in
    Qwen2-VL-Instruct, and the Qwen2-VL chat template is attached.

    Args:
        bpe_vocab_size: Target size of the trained BPE vocabulary (256 byte symbols included).

    Returns:
        A ``transformers`` ``Qwen2Tokenizer`` (``Qwen2TokenizerFast`` is an alias in v5).
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    raw = Tokenizer(BPE())
    raw.normalizer = normalizers.NFC()
    raw.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    raw.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=bpe_vocab_size,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    raw.train_from_iterator(build_corpus(), trainer=trainer)
    model_state = json.loads(raw.to_str())["model"]
    vocab: dict[str, int] = model_state["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model_state["merges"]]

    eos, pad = "<|im_end|>", "<|endoftext|>"
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token=pad,  # registers <|endoftext|> first so it gets the first special id
        pad_token=pad,
        errors="replace",
        model_max_length=32768,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN2_VL_SPECIAL_TOKENS[1:])})
    tokenizer.eos_token = eos
    tokenizer.chat_template = CHAT_TEMPLATE

    base = len(vocab)
    for offset, token in enumerate(QWEN2_VL_SPECIAL_TOKENS):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id != base + offset:
            raise RuntimeError(f"special token {token!r} got id {token_id}, expected {base + offset}")
    return tokenizer


def build_tiny_processor(
    tokenizer: Any,
    arch: Arch = "qwen2_5_vl",
    min_pixels: int = _MIN_PIXELS,
    max_pixels: int = _MAX_PIXELS,
) -> Any:
    """Create the real multimodal processor for ``arch`` around ``tokenizer``.

    Args:
        tokenizer: Tokenizer from :func:`build_tiny_tokenizer`.
        arch: ``"qwen2_5_vl"`` (``Qwen2_5_VLProcessor``) or ``"qwen2_vl"`` (``Qwen2VLProcessor``).
        min_pixels: Minimum pixels per image / video frame after resizing.
        max_pixels: Maximum pixels per image / video frame after resizing.

    Returns:
        The processor (image processor patch 14, merge 2, temporal patch 2).
    """
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    _check_arch(arch)
    common: dict[str, Any] = {
        "patch_size": _PATCH_SIZE,
        "temporal_patch_size": _TEMPORAL_PATCH_SIZE,
        "merge_size": _MERGE_SIZE,
    }
    # Pass ``size`` explicitly: the ``min_pixels``/``max_pixels`` kwargs mutate the
    # class-level default ``size`` dict in transformers 5.6.
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, **common)
    video_processor = Qwen2VLVideoProcessor(size={"shortest_edge": min_pixels, "longest_edge": max_pixels}, **common)
    processor_cls = Qwen2_5_VLProcessor if arch == "qwen2_5_vl" else Qwen2VLProcessor
    return processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


def _check_arch(arch: str) -> None:
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")


def _mrope_section(head_dim: int) -> list[int]:
    """Split ``head_dim // 2`` rotary frequencies into (temporal, height, width) sections."""
    half = head_dim // 2
    base = half // 3
    return [half - 2 * base, base, base]


def _mlp_ratio(intermediate: int, width: int) -> float | int:
    """Qwen2-VL's vision ``mlp_ratio`` for an MLP ``intermediate`` wide (an int when it divides evenly)."""
    return intermediate // width if intermediate % width == 0 else intermediate / width


def _padded_vocab_size(num_tokens: int) -> int:
    """Round ``num_tokens`` up to a multiple of 64 keeping at least 64 spare rows."""
    return int(math.ceil((num_tokens + _SPARE_ROWS) / 64) * 64)


def _build_config(
    arch: Arch,
    token_ids: dict[str, int],
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    vision_depth: int = 2,
    vision_hidden_size: int = 32,
    vision_num_heads: int = 2,
    vision_intermediate_size: int | None = None,
) -> Any:
    """Create the (tiny by default) ``Qwen2VLConfig`` / ``Qwen2_5_VLConfig``."""
    from transformers import Qwen2_5_VLConfig, Qwen2VLConfig

    if num_heads < 1 or num_kv_heads < 1 or num_heads % num_kv_heads != 0:
        raise ValueError(f"num_heads ({num_heads}) must be a positive multiple of num_kv_heads ({num_kv_heads})")
    if hidden_size % num_heads != 0 or (hidden_size // num_heads) % 2 != 0 or hidden_size // num_heads < 6:
        raise ValueError(
            f"hidden_size must be a multiple of {2 * num_heads} and >= {6 * num_heads} "
            f"({num_heads} heads, even head_dim >= 6); got {hidden_size}"
        )
    if vision_depth < 1 or vision_hidden_size % vision_num_heads != 0:
        raise ValueError(
            f"vision_depth must be >= 1 and vision_hidden_size ({vision_hidden_size}) a multiple of "
            f"vision_num_heads ({vision_num_heads})"
        )
    head_dim = hidden_size // num_heads
    text_config: dict[str, Any] = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size or 2 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "rms_norm_eps": 1e-6,
        "use_sliding_window": False,
        "max_window_layers": num_layers,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": _mrope_section(head_dim),
        },
        "bos_token_id": token_ids["bos"],
        "eos_token_id": token_ids["eos"],
        "pad_token_id": token_ids["pad"],
        "tie_word_embeddings": False,
        "dtype": "float32",
    }
    vision_common: dict[str, Any] = {
        "depth": vision_depth,
        "num_heads": vision_num_heads,
        "in_channels": 3,
        "patch_size": _PATCH_SIZE,
        "spatial_merge_size": _MERGE_SIZE,
        "temporal_patch_size": _TEMPORAL_PATCH_SIZE,
    }
    if arch == "qwen2_vl":
        vision_config = {
            **vision_common,
            "embed_dim": vision_hidden_size,
            "hidden_size": hidden_size,  # output (projection) size == text hidden size
            "mlp_ratio": _mlp_ratio(vision_intermediate_size or 2 * vision_hidden_size, vision_hidden_size),
            "hidden_act": "quick_gelu",
        }
        config_cls = Qwen2VLConfig
    else:
        vision_config = {
            **vision_common,
            "hidden_size": vision_hidden_size,
            "out_hidden_size": hidden_size,
            "intermediate_size": vision_intermediate_size or 2 * vision_hidden_size,
            "hidden_act": "silu",
            "window_size": 112,
            # windowed blocks, the last one full attention (default depth 2: block 0 windowed, block 1 full)
            "fullatt_block_indexes": [vision_depth - 1],
            "tokens_per_second": 2,
        }
        config_cls = Qwen2_5_VLConfig
    return config_cls(
        text_config=text_config,
        vision_config=vision_config,
        image_token_id=token_ids["image"],
        video_token_id=token_ids["video"],
        vision_start_token_id=token_ids["vision_start"],
        vision_end_token_id=token_ids["vision_end"],
        bos_token_id=token_ids["bos"],
        eos_token_id=token_ids["eos"],
        pad_token_id=token_ids["pad"],
        tie_word_embeddings=False,
        dtype="float32",
    )


def build_tiny_model(
    output_dir: str | os.PathLike[str],
    arch: Arch = "qwen2_5_vl",
    seed: int = 0,
    hidden_size: int = 48,
    num_layers: int = 2,
    vocab_size: int | None = None,
    vocab_layout: VocabLayout = "padded",
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    vision_depth: int = 2,
    vision_hidden_size: int = 32,
    vision_num_heads: int = 2,
    vision_intermediate_size: int | None = None,
    max_pixels: int = _MAX_PIXELS,
    dtype: Literal["float32", "bfloat16"] = "float32",
) -> str:
    """Write a tiny random Qwen2-VL / Qwen2.5-VL checkpoint with a real tokenizer and processor.

    The directory loads with ``AutoModelForImageTextToText``, ``AutoTokenizer``,
    ``AutoProcessor`` and with LlamaFactory's ``load_tokenizer`` / ``load_model``
    (``template: qwen2_vl``). Text model: ``hidden_size`` wide, ``num_layers`` layers,
    4 attention heads (2 KV heads), MLP ``2 * hidden_size``, M-RoPE. Vision tower: depth 2,
    width 32, 2 heads, patch 14, spatial merge 2, temporal patch 2, projected to
    ``hidden_size``. Weights are float32 safetensors, untied, seeded by ``seed``.

    Args:
        output_dir: Destination directory (created; existing files are overwritten).
        arch: ``"qwen2_5_vl"`` or ``"qwen2_vl"``.
        seed: Seed for the random weight initialisation (the caller's RNG state is preserved).
        hidden_size: Text hidden size (multiple of 8, >= 24).
        num_layers: Number of text decoder layers.
        vocab_size: Embedding rows. Defaults to ``len(tokenizer)`` rounded up to a multiple
            of 64 with at least 64 spare rows (room for extra special tokens such as
            ``<ACTION>`` without resizing). Must be ``>= len(tokenizer)`` if given.
        vocab_layout: When ``vocab_size`` is not given: ``"padded"`` (spare rows, like the released Qwen
            checkpoints) or ``"exact"`` (exactly ``len(tokenizer)`` rows, like LLaVA-NeXT-Video, InternVL and any
            checkpoint whose tokenizer fills its embedding: adding a token resizes the embedding).
        num_heads / num_kv_heads / intermediate_size: text attention heads, KV heads and MLP width (default 4, 2
            and ``2 * hidden_size``). Real-width configs, e.g. the 3B text width: ``hidden_size=2048,
            num_heads=16, num_kv_heads=2, intermediate_size=11008, vocab_size=151936``.
        vision_depth / vision_hidden_size / vision_num_heads / vision_intermediate_size: vision tower blocks, width,
            heads and MLP width (default 2, 32, 2 and ``2 * vision_hidden_size``; the released Qwen2.5-VL tower is
            1280 wide, 16 heads, MLP 3420). Qwen2.5-VL: every block is windowed but the last (full attention).
        max_pixels: largest frame (pixels) the processor keeps (default 112 x 112).
        dtype: dtype of the saved weights (``bfloat16`` halves the size of real-width checkpoints).

    Returns:
        The output directory as a string.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLForConditionalGeneration
    from transformers.utils import logging as hf_logging

    _check_arch(arch)
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tiny_tokenizer()
    processor = build_tiny_processor(tokenizer, arch=arch, max_pixels=max_pixels)
    num_tokens = len(tokenizer)
    if vocab_layout not in VOCAB_LAYOUTS:
        raise ValueError(f"vocab_layout must be one of {VOCAB_LAYOUTS}, got {vocab_layout!r}")
    if vocab_size is None:
        vocab_size = _padded_vocab_size(num_tokens) if vocab_layout == "padded" else num_tokens
    elif vocab_size < num_tokens:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the tokenizer ({num_tokens} tokens)")

    ids = {
        "bos": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "pad": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "image": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "video": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    }
    config = _build_config(
        arch,
        ids,
        vocab_size,
        hidden_size,
        num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        vision_depth=vision_depth,
        vision_hidden_size=vision_hidden_size,
        vision_num_heads=vision_num_heads,
        vision_intermediate_size=vision_intermediate_size,
    )
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be float32 or bfloat16, got {dtype!r}")
    torch_dtype = getattr(torch, dtype)
    model_cls = Qwen2_5_VLForConditionalGeneration if arch == "qwen2_5_vl" else Qwen2VLForConditionalGeneration

    verbosity = hf_logging.get_verbosity()
    progress_bar = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = model_cls(config).to(torch.float32).eval()
        if torch_dtype != torch.float32:
            model = model.to(torch_dtype)
            for cfg in (model.config, model.config.text_config, model.config.vision_config):
                cfg.dtype = dtype
        model.generation_config = GenerationConfig(
            bos_token_id=ids["bos"],
            eos_token_id=[ids["eos"], ids["pad"]],
            pad_token_id=ids["pad"],
            do_sample=False,
        )
        model.save_pretrained(out, safe_serialization=True)
        processor.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        hf_logging.set_verbosity(verbosity)
        if progress_bar:
            hf_logging.enable_progress_bar()
    return str(out)
