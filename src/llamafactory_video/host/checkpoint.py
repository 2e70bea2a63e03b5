r"""Resuming from full-weight checkpoints: ``transformers.Trainer`` reads them back without the model's key conversion.

transformers 5 ``save_pretrained`` writes a checkpoint in the model's original (Hub) key format: it reverts the
weight conversions ``from_pretrained`` applied (``revert_weight_conversion``). For Qwen2-VL / Qwen2.5-VL the module
``model.language_model.*`` is written as ``model.*`` and ``model.visual.*`` as ``visual.*``.
``Trainer._load_from_checkpoint`` and ``Trainer._load_best_model`` load that file with a plain
``model.load_state_dict(state_dict, False)``: only ``lm_head.weight`` matches, and the host merely warns ("There were
missing keys in the checkpoint model loaded") and trains on from the backbone's initial weights with the restored
optimizer state, scheduler and step (huggingface/transformers#43701, #48805).

:func:`patch_trainer` (installed on ``transformers.Trainer`` when LlamaFactory's ``train/trainer_utils.py`` is
imported, so for every stage, stock or plugin) takes over the plain case: full model weights in the checkpoint
(``model.safetensors`` / ``pytorch_model.bin``, single or sharded), no PEFT, FSDP, DeepSpeed or SageMaker MP. It
maps the checkpoint keys through the model's weight conversions the way ``from_pretrained`` does, loads them, and
raises :class:`CheckpointLoadError` (naming the checkpoint and keys) when a model key is not restored or a checkpoint
tensor is left unused. Keys ``save_pretrained`` never writes do not count: tied aliases, ``_keys_to_ignore_on_save``,
and the keys a trainer writes to a file of its own, which it lists with a ``checkpoint_keys_saved_apart(model, keys)``
method (see ``train/trainer_utils.py::HeadCheckpointMixin``). Every other case goes to the stock method.
"""

from __future__ import annotations

import json
import os
from copy import deepcopy
from typing import Any, Callable, Iterable, Optional

import torch

from .._logging import get_logger


logger = get_logger(__name__)

SAVED_APART_HOOK = "checkpoint_keys_saved_apart"
SHOWN_KEYS = 8


class CheckpointLoadError(RuntimeError):
    r"""The model weights of a checkpoint do not (fully) load into the model being trained."""


def _names():
    from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

    return SAFE_WEIGHTS_NAME, WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_INDEX_NAME


def weight_files(checkpoint_dir: str) -> Optional[list[str]]:
    r"""The full-model weight files of ``checkpoint_dir`` (one file, or the shards of an index), else None."""
    safe, plain, safe_index, plain_index = _names()
    for name in (safe, plain):
        path = os.path.join(checkpoint_dir, name)
        if os.path.isfile(path):
            return [path]
    for name in (safe_index, plain_index):
        path = os.path.join(checkpoint_dir, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            return [os.path.join(checkpoint_dir, shard) for shard in shards]
    return None


def read_state_dict(files: Iterable[str]) -> dict[str, torch.Tensor]:
    r"""All tensors of ``files`` on the CPU (safetensors, or ``torch.load(weights_only=True)`` like the host)."""
    import safetensors.torch
    from transformers.utils.import_utils import check_torch_load_is_safe

    state_dict: dict[str, torch.Tensor] = {}
    for path in files:
        if path.endswith(".safetensors"):
            state_dict.update(safetensors.torch.load_file(path, device="cpu"))
        else:
            check_torch_load_is_safe()
            state_dict.update(torch.load(path, map_location="cpu", weights_only=True))
    return state_dict


def weight_conversions(model: torch.nn.Module) -> list:
    r"""The conversions ``from_pretrained`` applied to ``model`` (transformers keeps them as
    ``model._weight_conversions``, the list ``save_pretrained`` reverts), else the ones registered for its types."""
    conversions = getattr(model, "_weight_conversions", None)
    if conversions is None:
        from transformers.conversion_mapping import get_model_conversion_mapping

        conversions = get_model_conversion_mapping(model) if hasattr(model, "config") else []
    return deepcopy(list(conversions or []))


def convert_checkpoint_keys(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    r"""``state_dict`` (as ``save_pretrained`` wrote it) in ``model``'s own key format: the forward pass of
    ``transformers.core_model_loading.revert_weight_conversion``, keys matched as in
    ``convert_and_load_state_dict_in_model`` (the loading path of ``from_pretrained``)."""
    from transformers.core_model_loading import WeightConverter, WeightRenaming, dot_natural_key, rename_source_key

    conversions = weight_conversions(model)
    if not conversions:
        return state_dict
    renamings = [entry for entry in conversions if isinstance(entry, WeightRenaming)]
    converters = [entry for entry in conversions if isinstance(entry, WeightConverter)]
    pattern_to_converter = {pattern: converter for converter in converters for pattern in converter.source_patterns}
    model_keys = model.state_dict()
    prefix = getattr(model, "base_model_prefix", "")

    grouped: dict[str, Any] = {}
    for key, tensor in sorted(state_dict.items(), key=lambda item: dot_natural_key(item[0])):
        renamed, pattern = rename_source_key(key, renamings, converters, prefix, model_keys)
        if renamed not in model_keys and key in model_keys:  # already in the model's format
            renamed, pattern = key, None
        if pattern is not None:
            transform = grouped.setdefault(renamed, deepcopy(pattern_to_converter[pattern]))
        else:
            transform = grouped.setdefault(renamed, WeightRenaming(key, renamed))
            pattern = key
        transform.add_tensor(renamed, key, pattern, tensor)

    converted: dict[str, torch.Tensor] = {}
    for name, transform in grouped.items():
        for target, value in transform.convert(name, model=model, config=getattr(model, "config", None)).items():
            converted[target] = value[0] if isinstance(value, list) else value
    return converted


def _shown(keys: list[str]) -> str:
    more = f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
    return f"{keys[:SHOWN_KEYS]}{more}"


def load_model_checkpoint(
    model: torch.nn.Module,
    checkpoint_dir: str,
    saved_apart: Optional[Callable[[torch.nn.Module, list[str]], Iterable[str]]] = None,
) -> None:
    r"""Load the full model weights of ``checkpoint_dir`` into ``model``; raise :class:`CheckpointLoadError` unless
    every model key is restored (the keys ``saved_apart(model, missing)`` returns are the caller's to restore) and
    every checkpoint tensor is used."""
    from transformers.pytorch_utils import id_tensor_storage

    files = weight_files(checkpoint_dir)
    if files is None:
        raise CheckpointLoadError(f"No model weights (model.safetensors, pytorch_model.bin) in {checkpoint_dir}.")
    try:
        state_dict = convert_checkpoint_keys(model, read_state_dict(files))
    except Exception as err:
        raise CheckpointLoadError(f"Cannot read the model weights of checkpoint {checkpoint_dir}: {err}") from err

    result = model.load_state_dict(state_dict, strict=False)
    del state_dict
    own = model.state_dict()
    missing = set(result.missing_keys)
    restored = {id_tensor_storage(own[key]) for key in own if key not in missing and own[key].device.type != "meta"}
    ignored = set(getattr(model, "_keys_to_ignore_on_save", None) or ())
    missing = {key for key in missing if key not in ignored}
    missing = {key for key in missing if own[key].device.type == "meta" or id_tensor_storage(own[key]) not in restored}
    if missing and saved_apart is not None:
        missing -= set(saved_apart(model, sorted(missing)))
    problems = []
    if missing:
        problems.append(f"{len(missing)} model weights are not in it: {_shown(sorted(missing))}")
    if result.unexpected_keys:
        keys = sorted(result.unexpected_keys)
        problems.append(f"{len(keys)} of its tensors match no model weight: {_shown(keys)}")
    if problems:
        raise CheckpointLoadError(
            f"The model weights of checkpoint {checkpoint_dir} do not load into the model: "
            + "; ".join(problems)
            + ". Resume with the model (model_name_or_path, finetuning_type, stage) that wrote the checkpoint."
        )


def _plain(trainer: Any, model: torch.nn.Module) -> bool:
    r"""The setups whose weights the host loads with ``model.load_state_dict`` (the ones this patch takes over)."""
    from transformers.trainer_utils import _is_peft_model
    from transformers.utils import is_sagemaker_mp_enabled

    return not (
        is_sagemaker_mp_enabled() or trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled or _is_peft_model(model)
    )


def _saved_apart(trainer: Any):
    return getattr(trainer, SAVED_APART_HOOK, None)


def patch_trainer(trainer_cls: type) -> None:
    r"""Replace ``_load_from_checkpoint`` and ``_load_best_model`` of ``trainer_cls`` (``transformers.Trainer``) for
    the plain case; the originals stay as ``__wrapped__`` and handle everything else."""
    if getattr(trainer_cls._load_from_checkpoint, "__wrapped__", None) is not None:
        return
    original_resume = trainer_cls._load_from_checkpoint
    original_best = trainer_cls._load_best_model

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        target = model if model is not None else self.model
        if not _plain(self, target) or weight_files(resume_from_checkpoint) is None:
            return original_resume(self, resume_from_checkpoint, model)
        logger.info_rank0(f"Loading model from {resume_from_checkpoint} (weight keys mapped as from_pretrained does).")
        load_model_checkpoint(target, resume_from_checkpoint, _saved_apart(self))

    def _load_best_model(self) -> None:
        checkpoint = self.state.best_model_checkpoint
        if not _plain(self, self.model) or weight_files(checkpoint) is None:
            return original_best(self)
        logger.info_rank0(f"Loading best model from {checkpoint} (score: {self.state.best_metric}).")
        load_model_checkpoint(self.model, checkpoint, _saved_apart(self))

    _load_from_checkpoint.__wrapped__ = original_resume
    _load_best_model.__wrapped__ = original_best
    trainer_cls._load_from_checkpoint = _load_from_checkpoint
    trainer_cls._load_best_model = _load_best_model
