r"""The family layer: which video model family a model / config / template belongs to, and what it supports.

Stages and ``host/`` ask this layer; nothing else names a model family. See :mod:`.base` for the interface and
``docs/families.md`` for how to add a family.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .base import FEATURES, VIDEO_LLM_STAGES, FamilyNotSupported, VideoFamily
from .intern_vl import InternVLFamily
from .llava_next_video import LlavaNextVideoFamily
from .qwen2_vl import Qwen2VLFamily
from .qwen3_vl import Qwen3VLFamily


#: Every family, by name, in coverage-table order.
FAMILIES: dict[str, VideoFamily] = {
    family.name: family
    for family in (Qwen2VLFamily(), Qwen3VLFamily(), InternVLFamily(), LlavaNextVideoFamily())
}

__all__ = [
    "FAMILIES",
    "FEATURES",
    "VIDEO_LLM_STAGES",
    "FamilyNotSupported",
    "VideoFamily",
    "family_for",
    "family_for_template",
    "require",
    "supported_families",
]


def family_for_template(template: str | None) -> VideoFamily | None:
    r"""The family that trains with LlamaFactory template ``template``; ``None`` for an unknown template."""
    for family in FAMILIES.values():
        if template in family.templates:
            return family
    return None


def _config_of(model_or_config: Any) -> Any:
    if isinstance(model_or_config, (str, os.PathLike)):
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(model_or_config), trust_remote_code=True)
    config = getattr(model_or_config, "config", None)
    if config is not None and not hasattr(model_or_config, "model_type"):
        return config
    return model_or_config


def family_for(model_or_config: Any) -> VideoFamily | None:
    r"""The family of a loaded model (possibly PEFT- / DDP-wrapped), a ``PretrainedConfig`` or a model directory;
    ``None`` when no family matches."""
    config = _config_of(model_or_config)
    for family in FAMILIES.values():
        if family.matches_config(config):
            return family
    if isinstance(model_or_config, torch.nn.Module):
        for module in model_or_config.modules():  # wrappers (PEFT, DDP) keep the model's config one level down
            sub = getattr(module, "config", None)
            for family in FAMILIES.values():
                if sub is not None and family.matches_config(sub):
                    return family
    return None


def supported_families(what: str) -> list[str]:
    r"""Names of the families that serve stage or feature ``what``."""
    return [name for name, family in FAMILIES.items() if family.supports(what)]


def require(what: str, template: str | None = None, model_or_config: Any = None) -> VideoFamily:
    r"""The family of ``template`` (or of ``model_or_config``) if it serves stage / feature ``what``; otherwise
    a :class:`FamilyNotSupported` naming the family (or the unknown template) and the families that do."""
    family = family_for_template(template) if template is not None else None
    if family is None and model_or_config is not None:
        family = family_for(model_or_config)
    supported = supported_families(what)
    listing = ", ".join(f"{name} ({FAMILIES[name].title}; template {' / '.join(FAMILIES[name].templates)})"
                        for name in supported)
    if family is None:
        source = f"template `{template}`" if template is not None else f"model {type(model_or_config).__name__}"
        raise FamilyNotSupported(
            f"`{what}` needs a video model family it supports; {source} belongs to none of them. Supported: {listing}."
        )
    if not family.supports(what):
        raise FamilyNotSupported(
            f"`{what}` does not support the {family.name} family ({family.title}) yet. Supported: {listing}."
        )
    return family
