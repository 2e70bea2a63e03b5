"""Saving a LoRA adapter of a model whose vocabulary was resized, for composite (vision-language) configs.

peft 0.18's ``get_peft_model_state_dict(..., save_embedding_layers="auto")`` decides whether the embedding was
resized by comparing ``model.config.vocab_size`` with ``model.config.__class__.from_pretrained(base).vocab_size``.
transformers 5.6's composite configs (``Qwen2VLConfig``, ``Qwen2_5_VLConfig``, ``Qwen3VLConfig``, ...) keep the
vocabulary size in ``text_config`` only, while ``resize_token_embeddings`` sets it on the loaded instance: the
freshly loaded config has no ``vocab_size`` and the first checkpoint save of any LoRA run that added a token
(``<ACTION>``, or a stock ``sft`` run with ``add_special_tokens``) dies with ``AttributeError``.

We resolve ``"auto"`` ourselves for composite configs, with the same meaning (resized = the embedding's row count
differs from the base checkpoint's text vocabulary), before peft sees it:

- a model whose added rows are saved apart by a plugin head (``<ACTION>``: ``action_head.token_embedding``) is
  marked with :data:`ROWS_SAVED_APART_ATTR`: nothing of the embedding goes into the adapter (the issue's rule: new
  rows as our own safetensors, never the whole embedding through peft);
- otherwise resized -> ``True`` (peft saves ``embed_tokens`` / ``lm_head``, as it does for text-only models).

Any other value, and non-composite configs, go to peft unchanged.
"""

import os
from types import ModuleType
from typing import Any, Union

from .._logging import get_logger


logger = get_logger(__name__)

ROWS_SAVED_APART_ATTR = "_llamafactory_video_rows_saved_apart"
"""Set to ``True`` on a model (the ``PeftModel``) whose added vocabulary rows a plugin head saves itself."""


def _is_composite(config: Any) -> bool:
    return config is not None and getattr(config, "get_text_config", None) is not None and (
        config.get_text_config() is not config
    )


def base_text_vocab_size(model_id: str) -> Union[int, None]:
    r"""``vocab_size`` of the text config of the checkpoint at ``model_id`` (a local directory), or None."""
    if not model_id or not os.path.isfile(os.path.join(model_id, "config.json")):
        return None
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model_id)
    return getattr(config.get_text_config(), "vocab_size", None)


def resolve_save_embedding_layers(model: Any, adapter_name: str = "default") -> Union[bool, str]:
    r"""What ``save_embedding_layers="auto"`` should mean for ``model`` (a ``PeftModel``); ``"auto"`` = let peft
    decide (text-only configs, embedding layers among the LoRA targets)."""
    if getattr(model, ROWS_SAVED_APART_ATTR, False):
        return False
    config = getattr(model, "config", None)
    if not _is_composite(config):
        return "auto"
    peft_config = getattr(model, "peft_config", {}).get(adapter_name)
    targets = getattr(peft_config, "target_modules", None) or ()
    if isinstance(targets, str) or any(name in targets for name in ("embed_tokens", "lm_head")):
        return "auto"  # peft's own path for targeted embeddings never reads vocab_size
    base = base_text_vocab_size(getattr(peft_config, "base_model_name_or_path", None))
    if base is None:
        return False  # peft's answer when it cannot find the base config
    try:
        rows = model.get_input_embeddings().weight.shape[0]
    except (NotImplementedError, AttributeError):
        return "auto"  # no single input embedding (e.g. CLIPModel, a dual encoder): peft's own answer
    if rows != base:
        logger.info_rank0(
            f"The embedding was resized ({base} -> {rows} rows): the adapter saves embed_tokens / lm_head too."
        )
    return rows != base


def patch_peft_model(module: ModuleType) -> None:
    r"""Wrap ``peft.peft_model.get_peft_model_state_dict`` (the name ``PeftModel.save_pretrained`` calls)."""
    original = module.get_peft_model_state_dict
    if getattr(original, "__wrapped__", None) is not None:
        return

    def get_peft_model_state_dict(
        model, state_dict=None, adapter_name="default", unwrap_compiled=False, save_embedding_layers="auto"
    ):
        if save_embedding_layers == "auto":
            save_embedding_layers = resolve_save_embedding_layers(model, adapter_name)
        return original(
            model,
            state_dict=state_dict,
            adapter_name=adapter_name,
            unwrap_compiled=unwrap_compiled,
            save_embedding_layers=save_embedding_layers,
        )

    get_peft_model_state_dict.__wrapped__ = original
    module.get_peft_model_state_dict = get_peft_model_state_dict
