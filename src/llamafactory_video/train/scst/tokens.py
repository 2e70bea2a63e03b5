"""Token-level inputs of the ``scst`` stage: the M-RoPE modality ids of a prompt (+ caption) batch and the tokens a
sampled caption must never contain.

* ``mm_token_type_ids``: transformers 5.6's Qwen2-VL / Qwen2.5-VL compute M-RoPE positions only from it (Qwen2-VL
  raises without it when video / image grids are passed; Qwen2.5-VL silently falls back to 1-D text positions). It
  is 0 for text, 1 for ``<|image_pad|>``, 2 for ``<|video_pad|>``: the processor's ``create_mm_token_type_ids`` and
  the host collator's ``_compute_rope_position_ids`` build it the same way.
* suppressed tokens: a caption is the model's answer text. A sampled ``<|video_pad|>`` (or ``<|image_pad|>``) makes
  the teacher-forced pass over prompt + caption fail (placeholder count != visual features); the other special
  tokens (``<|im_start|>``, ``<|vision_start|>``, ...) and the spare embedding rows past the tokenizer are not
  caption text either. Only the end tokens (EOS and the template's stop words) stay allowed.
"""

from typing import Any, Iterable, Optional

import torch


TEXT_TYPE, IMAGE_TYPE, VIDEO_TYPE = 0, 1, 2
PLACEHOLDER_ATTRS = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
PROCESSOR_TOKEN_ATTRS = ("image_token", "video_token", "vision_start_token", "vision_end_token")


def mm_token_type_ids(
    input_ids: torch.Tensor, image_token_id: Optional[int], video_token_id: Optional[int]
) -> torch.Tensor:
    r"""``(B, L)`` long: 1 where ``input_ids`` is the image placeholder, 2 for the video placeholder, else 0."""
    types = torch.zeros_like(input_ids, dtype=torch.long)
    if image_token_id is not None:
        types[input_ids == image_token_id] = IMAGE_TYPE
    if video_token_id is not None:
        types[input_ids == video_token_id] = VIDEO_TYPE
    return types


def rope_needs_mm_token_types(model: torch.nn.Module) -> bool:
    r"""Whether the model's M-RoPE index (``get_rope_index``, Qwen2-VL family, transformers >= 5) takes
    ``mm_token_type_ids``; a model without one (plain text positions) is given none."""
    import inspect

    for module in model.modules():
        rope_index = getattr(module, "get_rope_index", None)
        if callable(rope_index):
            return "mm_token_type_ids" in inspect.signature(rope_index).parameters
    return False


def _token_id(tokenizer: Any, token: Any) -> Optional[int]:
    if not isinstance(token, str):
        return None
    token_id = tokenizer.convert_tokens_to_ids(token)
    return token_id if isinstance(token_id, int) and token_id != tokenizer.unk_token_id else None


def suppressed_token_ids(
    tokenizer: Any,
    keep_ids: Iterable[int],
    processor: Optional[Any] = None,
    config: Optional[Any] = None,
    vocab_size: Optional[int] = None,
) -> list[int]:
    r"""Token ids a caption must never contain, sorted.

    Every special token of ``tokenizer`` (``all_special_ids`` and added tokens marked special), the placeholder and
    vision start / end tokens named by ``processor`` (``image_token`` / ``video_token`` and their ids) and by the model
    ``config`` (``image_token_id``, ``video_token_id``, ``vision_start_token_id``, ``vision_end_token_id``), and the
    embedding rows ``len(tokenizer) .. vocab_size - 1`` that no token maps to; minus ``keep_ids`` (the end tokens).
    Added tokens NOT marked special (vocabulary extensions) stay allowed.
    """
    ids: set[int] = set(tokenizer.all_special_ids)
    ids.update(i for i, token in tokenizer.added_tokens_decoder.items() if getattr(token, "special", False))
    for source in (processor, config, getattr(config, "text_config", None)):
        if source is None:
            continue
        for attr in PLACEHOLDER_ATTRS:
            value = getattr(source, attr, None)
            if isinstance(value, int):
                ids.add(value)
        for attr in PROCESSOR_TOKEN_ATTRS:
            value = _token_id(tokenizer, getattr(source, attr, None))
            if value is not None:
                ids.add(value)
    if vocab_size is not None:
        ids.update(range(len(tokenizer), int(vocab_size)))
    return sorted(i for i in ids - set(keep_ids) if i is not None and i >= 0)
