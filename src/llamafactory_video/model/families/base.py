r"""The interface of a video model family: everything a stage or ``host/`` needs to know about a model's video
geometry, asked in one place.

A family is a stateless object (one instance per family, registered in :data:`~.FAMILIES`). Stages and the
host never name a model class, a template or a config key of a family: they call :func:`~.family_for` (a loaded
model, a config or a model directory) or :func:`~.family_for_template` (a LlamaFactory template name, before any
model is loaded) and ask the family.

Adding a family (``docs/families.md``): one module ``model/families/<name>.py`` with a subclass of
:class:`VideoFamily` filling in the class attributes and the methods its declared ``stages`` / ``features`` need
(the others keep raising :class:`FamilyNotSupported`), its entry in ``FAMILIES`` (``families/__init__.py``), a
tiny builder in ``testing/tiny_families.py`` (``FAMILY_BUILDERS``), and e2e tests for every stage it declares;
the coverage table in ``docs/families.md`` and the README is regenerated from the layer and checked by
``tests/unit/test_families.py``.

Shapes used below: ``V`` videos in batch order; ``video_grid_thw`` ``(V, 3)`` is the processor's
``(grid_t, grid_h, grid_w)`` per video in patch units before the spatial merge (Qwen families); a *run* is a
maximal span of consecutive video placeholder tokens in ``input_ids``.
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import torch
from torch import nn

from .visual_once import EncodedVisual


#: Stages a family can declare (the stages of this plugin that run a video LLM).
VIDEO_LLM_STAGES: tuple[str, ...] = ("action_cls", "scst", "fastslow_ar")
#: Optional features a family can declare.
FEATURES: tuple[str, ...] = ("video_token_pool_stride",)


class FamilyNotSupported(ValueError):
    r"""A stage or feature asked a family for something it does not declare."""


class VideoFamily:
    r"""Base of every family. Subclasses set the class attributes and override the methods they support."""

    name: ClassVar[str] = ""
    """Registry key, e.g. ``"qwen2_vl"``; also the first column of the coverage table."""
    title: ClassVar[str] = ""
    """Human name(s) of the models, e.g. ``"Qwen2-VL / Qwen2.5-VL"``."""
    model_types: ClassVar[tuple[str, ...]] = ()
    """``config.model_type`` values of the family (the top-level composite config)."""
    templates: ClassVar[tuple[str, ...]] = ()
    """LlamaFactory template names the family trains with (checked before the model loads)."""
    stages: ClassVar[frozenset[str]] = frozenset()
    """Stages of :data:`VIDEO_LLM_STAGES` this family serves (each needs an e2e test, see the coverage test)."""
    features: ClassVar[frozenset[str]] = frozenset()
    """Optional features of :data:`FEATURES` (``video_token_pool_stride``: pooling of video tokens)."""
    mm_plugins: ClassVar[tuple[str, ...]] = ()
    """Class names of the LlamaFactory ``mm_plugin`` classes of the family's templates (host/pooling.py wraps
    their ``process_messages``)."""
    generate_repeats_visual_inputs: ClassVar[bool] = True
    """Whether the model's ``generate(num_return_sequences=K)`` repeats the visual inputs per sample correctly; when
    not (frames of all samples in one tensor, split by placeholder counts), ``scst`` repeats the prompt batch itself
    with :meth:`repeat_visual_inputs` and samples one sequence per row."""
    e2e_tests: ClassVar[dict[str, str]] = {}
    """For every declared stage and feature, the e2e test (``path::function``) that runs it through the stock
    ``llamafactory-cli`` on this family's tiny model (checked by ``tests/unit/test_families_coverage.py``)."""
    processor_only_keys: ClassVar[tuple[str, ...]] = ()
    """Keys the family's processor / collator put in a batch that the model's ``forward`` / ``generate`` do not
    take (Qwen3-VL: ``video_metadata``); stages that call ``generate`` themselves drop them."""
    pixel_keys: ClassVar[tuple[str, ...]] = ()
    """Keys of a batch that only the vision pass reads (pixels, image sizes): left out when the model is called with
    precomputed visual features (:meth:`encode_visual`); empty for a family without that hook."""
    tiny_builder: ClassVar[str] = ""
    """Key of the family's tiny offline builder in ``testing.tiny_families.FAMILY_BUILDERS``."""
    vision_tower_path: ClassVar[str] = ""
    """Dotted attribute path of the vision encoder inside the core module (e.g. ``"visual"``)."""
    projector_path: ClassVar[str] = ""
    """Dotted attribute path of the vision-to-LLM projector inside the core (e.g. ``"visual.merger"``)."""
    language_model_path: ClassVar[str] = "language_model"
    """Dotted attribute path of the decoder stack (without the LM head) inside the core."""
    core_attributes: ClassVar[tuple[str, ...]] = ()
    """Attributes that mark the family's core module (default: the first part of each path above)."""

    # ------------------------------------------------------------------------------------------- detection
    def matches_config(self, config: Any) -> bool:
        r"""Whether a (composite) ``PretrainedConfig`` belongs to this family (by ``model_type``)."""
        return getattr(config, "model_type", None) in self.model_types

    def supports(self, what: str) -> bool:
        return what in self.stages or what in self.features

    # ------------------------------------------------------------------------------------------- modules
    def find_core(self, model: nn.Module) -> nn.Module:
        r"""The family's base multimodal module (vision tower + language model) inside a possibly PEFT- / DDP-
        wrapped ``...ForConditionalGeneration``: the first module of the family's config holding every
        :attr:`core_attributes`."""
        marks = self.core_attributes or tuple(
            dict.fromkeys(p.split(".")[0] for p in (self.vision_tower_path, self.projector_path,
                                                   self.language_model_path) if p)
        )
        if not marks:
            raise FamilyNotSupported(f"{self.name}: find_core is not implemented")
        for module in model.modules():
            if self.matches_config(getattr(module, "config", None)) and all(hasattr(module, a) for a in marks):
                return module
        named = ", ".join(f"`{a}`" for a in marks)
        raise ValueError(f"{type(model).__name__} holds no {self.title} core (a module with {named}).")

    def _core_part(self, model: nn.Module, path: str, what: str) -> nn.Module:
        if not path:
            raise FamilyNotSupported(f"{self.name}: {what} is not implemented")
        module = self.find_core(model)
        for part in path.split("."):
            module = getattr(module, part)
        return module

    def vision_tower(self, model: nn.Module) -> nn.Module:
        r"""The vision encoder (the part run on pixels)."""
        return self._core_part(model, self.vision_tower_path, "vision_tower")

    def projector(self, model: nn.Module) -> nn.Module:
        r"""The module mapping vision features to the language model's width."""
        return self._core_part(model, self.projector_path, "projector")

    def language_model(self, model: nn.Module) -> nn.Module:
        r"""The decoder stack (without the LM head)."""
        return self._core_part(model, self.language_model_path, "language_model")

    def video_token_id(self, config: Any) -> int:
        return int(config.video_token_id)

    def image_token_id(self, config: Any) -> int | None:
        value = getattr(config, "image_token_id", None)
        return int(value) if value is not None else None

    # ------------------------------------------------------------------------------------------- placeholders
    def merge_size(self, processor_or_core: Any) -> int:
        r"""Spatial merge factor (tokens per side of one LLM token) from a processor or a core module."""
        raise FamilyNotSupported(f"{self.name}: merge_size is not implemented")

    def placeholder_runs(self, video_grid_thw: Any, merge_size: int, pooling: Any = None) -> list[list[int]]:
        r"""Per video, the lengths of its placeholder runs in ``input_ids`` (one run for a family that writes a
        video as one span, one run per temporal slot for a family that writes per-frame timestamps between them),
        pooled by ``pooling`` (a :class:`~llamafactory_video.model.video_pooling.VideoPooling`) when given."""
        raise FamilyNotSupported(f"{self.name}: placeholder_runs is not implemented")

    def placeholder_counts(self, video_grid_thw: Any, merge_size: int, pooling: Any = None) -> list[int]:
        r"""Per video, the number of video placeholder tokens (the sum of :meth:`placeholder_runs`)."""
        return [sum(runs) for runs in self.placeholder_runs(video_grid_thw, merge_size, pooling)]

    def expand_pooled_videos(self, plugin: Any, module: Any, messages: list[dict], mm_inputs: dict, processor: Any,
                             pooling: Any) -> list[dict]:
        r"""``messages`` (a copy) with every ``<image>`` / ``<video>`` placeholder of LlamaFactory's
        ``mm_plugin`` module ``module`` expanded as ``plugin`` would, but each video into its pooled number of
        placeholder tokens (``mm_inputs``: the plugin's token metadata of the sample)."""
        raise FamilyNotSupported(f"{self.name}: video token pooling is not implemented")

    # ------------------------------------------------------------------------------------------- model side
    def pool_video_output(self, core: nn.Module, output: Any, video_grid_thw: torch.Tensor, pooling: Any) -> Any:
        r"""Pool the output of the stock ``core.get_video_features`` in place and return it, with the pooled
        ``(N, D)`` features concatenated over videos as ``output.lfv_pooled`` (for the fastslow loss). Every
        feature tensor that is scattered into the placeholders (Qwen3-VL: also each deepstack level) is pooled
        the same way, so its rows stay aligned with the placeholders."""
        raise FamilyNotSupported(f"{self.name}: video token pooling is not implemented")

    def pooled_rope_index(self, core: nn.Module, pooling: Any) -> Any:
        r"""A drop-in for ``core.get_rope_index`` (same signature and return) that gives the pooled placeholders
        their positions; with identity pooling it must equal the stock one."""
        raise FamilyNotSupported(f"{self.name}: video token pooling is not implemented")

    def rope_index(self, core: nn.Module, inputs: dict[str, Any]) -> torch.Tensor | None:
        r"""``(3, B, L)`` (or ``(B, L)``) explicit position ids of a collated batch, computed by the model's
        (possibly pooled) rope index; ``None`` for 1-D rope families whose positions the model derives itself."""
        return None

    # ------------------------------------------------------------------------------------------- batches
    def extra_forward_kwargs(self, config: Any, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        r"""Keyword inputs the model needs besides ``input_ids`` / visual inputs to place visual tokens
        (Qwen families: ``mm_token_type_ids`` ``(B, L)``, 0 text / 1 image / 2 video)."""
        return {}

    def repeat_visual_inputs(self, inputs: dict[str, Any], repeats: int, config: Any = None) -> dict[str, Any]:
        r"""The visual inputs of a batch of ``B`` samples repeated ``repeats`` times each, sample-major (as
        ``generate(num_return_sequences=repeats)`` orders them); used by ``scst`` for its K samples. ``config``:
        the model's config, for families whose batches only split per sample by their placeholder tokens."""
        raise FamilyNotSupported(f"{self.name}: repeat_visual_inputs is not implemented")

    # ------------------------------------------------------------------------------------------- stage hooks
    def fastslow_slot_counts(self, video_grid_thw: torch.Tensor, merge_size: int, pooling: Any) -> list[list[int]]:
        r"""Per placeholder run, the pooled token count of each temporal slot in it (``fastslow_ar``'s slot ids,
        :func:`~llamafactory_video.model.fastslow.video_slot_ids`)."""
        raise FamilyNotSupported(f"{self.name}: fastslow_ar is not implemented")

    # ------------------------------------------------------------------------------------------- one vision pass
    def encode_visual(self, model: nn.Module, inputs: dict[str, Any]) -> EncodedVisual:
        r"""Run the vision tower + projector once over the batch ``inputs`` (the stock feature methods of the core,
        so a host pooling wrapper applies) and return the features per placeholder token id
        (:class:`~.visual_once.EncodedVisual`), with gradient when the caller's grad mode allows it."""
        raise FamilyNotSupported(f"{self.name}: encode_visual is not implemented")

    def precomputed_generate_kwargs(self, model: nn.Module, inputs: dict[str, Any], embeds: torch.Tensor) -> dict:
        r"""Keyword inputs of ``generate`` for the prompt batch ``inputs`` with its embeddings ``embeds`` ``(B, L, D)``
        already holding the visual features: ``input_ids`` stay (``generate`` returns prompt + new tokens and, for
        M-RoPE families, derives positions from them), the pixel keys go (no vision pass)."""
        out = {k: v for k, v in inputs.items() if k not in self.pixel_keys}
        out["inputs_embeds"] = embeds
        return out

    def precomputed_forward_kwargs(self, model: nn.Module, inputs: dict[str, Any], embeds: torch.Tensor) -> dict:
        r"""Keyword inputs of a full-sequence ``forward`` with precomputed ``embeds`` ``(B, L, D)``: the embeddings
        and the attention mask; 1-D RoPE families derive positions as the stock forward does (``input_ids`` left
        out: their forward takes one of ``input_ids`` / ``inputs_embeds``)."""
        return {"inputs_embeds": embeds, "attention_mask": inputs.get("attention_mask")}

    def visual_injection(self, model: nn.Module, encoded: EncodedVisual, input_ids: torch.Tensor):
        r"""Context in which calls of ``model`` with precomputed embeddings of ``input_ids`` also receive the
        visual inputs that are not embeddings (Qwen3-VL: the deepstack features); nothing for other families."""
        return contextlib.nullcontext()
