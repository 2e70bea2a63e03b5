r"""One vision pass per ``scst`` step (``scst_vision_pass: once``, the default).

The stock route runs the vision tower + projector on every video ``2K + 1`` times a step: inside ``generate`` for
the K samples (the pixels repeated K times), again for the greedy / beam baseline, and on K copies in the
teacher-forced pass. Here each micro-batch's videos are encoded **once** (the family's
:meth:`~llamafactory_video.model.families.base.VideoFamily.encode_visual`, with gradient when the tower or the
projector has trainable parameters and the model trains), and every call takes precomputed input embeddings:

* the sampling and the baseline ``generate`` get the features **detached**, each prompt row repeated K times
  (``inputs_embeds`` for the prompt step, ``input_ids`` for the returned sequences and, for M-RoPE families, the
  positions; no pixels);
* the teacher-forced forward gets the K-times repeated features **with** their graph, so the tower / projector
  receive the gradient of all K copies, summed, as when each copy ran the tower itself.

:class:`VisionPass` holds one micro-batch's features; the trainer builds it in ``compute_loss``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ...model.families.visual_once import EncodedVisual, embed_with_visual, repeat_encoded


VISION_PASS_ROUTES = ("once", "per_call")
GRID_KEYS = ("video_grid_thw", "image_grid_thw")


def trainable_embeddings(model: torch.nn.Module) -> bool:
    r"""Whether the input embedding table of ``model`` requires grad (full fine-tuning of the text embeddings)."""
    return any(p.requires_grad for p in model.get_input_embeddings().parameters())


class VisionPass:
    r"""The visual features of one prompt batch ``prompt`` (``input_ids`` ``(B, L)``), computed once.

    ``model``: the unwrapped model; ``with_grad``: record the graph (training), which holds something only when a
    parameter of the tower, the projector or the resampler requires grad (:attr:`has_graph`)."""

    def __init__(self, family: Any, model: torch.nn.Module, prompt: dict[str, Any], with_grad: bool) -> None:
        self.family = family
        self.model = model
        self.input_ids = prompt["input_ids"]
        with torch.set_grad_enabled(with_grad and torch.is_grad_enabled()):
            self.encoded: EncodedVisual = family.encode_visual(model, prompt)

    @property
    def has_graph(self) -> bool:
        r"""Whether the features depend on trainable parameters (they then carry gradient to them)."""
        tensors = list(self.encoded.features.values()) + list(self.encoded.deepstack or [])
        return any(t.requires_grad for t in tensors)

    # ------------------------------------------------------------------------------------------------ rows
    def repeat_rows(self, inputs: dict[str, Any], repeats: int) -> dict[str, Any]:
        r"""``inputs`` without its pixel keys, every ``(B, ...)`` tensor repeated ``repeats`` times per row
        (sample-major); per-video grids with another first dimension go through the family's
        ``repeat_visual_inputs``."""
        batch = self.input_ids.shape[0]
        stripped = {k: v for k, v in inputs.items() if k not in self.family.pixel_keys}
        out = {
            key: value.repeat_interleave(repeats, dim=0)
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch
            else value
            for key, value in stripped.items()
        }
        if any(isinstance(inputs.get(k), torch.Tensor) and inputs[k].shape[0] != batch for k in GRID_KEYS):
            config = getattr(self.model, "config", None)
            repeated = self.family.repeat_visual_inputs(inputs, repeats, config=config)
            out.update({k: v for k, v in repeated.items() if k not in self.family.pixel_keys})
        return out

    def embeds(self, input_ids: torch.Tensor, repeats: int, detach: bool) -> tuple[torch.Tensor, EncodedVisual]:
        r"""``(B * repeats, L', D)`` embeddings of ``input_ids`` (the prompt rows repeated, possibly followed by
        caption tokens) with the features scattered in, and the repeated features."""
        encoded = self.encoded.detach() if detach else self.encoded
        encoded = repeat_encoded(encoded, self.input_ids, repeats)
        return embed_with_visual(self.model.get_input_embeddings(), input_ids, encoded), encoded

    # ------------------------------------------------------------------------------------------------ calls
    def generate(self, model: torch.nn.Module, prompt: dict[str, Any], repeats: int, **gen_kwargs) -> torch.Tensor:
        r"""``generate`` (of ``model``, unwrapped) on the prompt rows each repeated ``repeats`` times with the
        detached features; returns the full sequences ``(B * repeats, L + G)``."""
        rows = self.repeat_rows(prompt, repeats)
        embeds, encoded = self.embeds(rows["input_ids"], repeats, detach=True)
        kwargs = self.family.precomputed_generate_kwargs(model, rows, embeds)
        with self.family.visual_injection(model, encoded, rows["input_ids"]):
            return model.generate(**kwargs, **dict(gen_kwargs, num_return_sequences=1))

    def forward_inputs(self, forward: dict[str, Any], repeats: int) -> tuple[dict[str, Any], Callable[[], Any]]:
        r"""The keyword inputs of the teacher-forced forward over ``forward`` (prompt rows repeated ``repeats``
        times + caption: ``input_ids``, ``attention_mask``, ``mm_token_type_ids``, grids; pixels ignored) with the
        features and their graph, and a factory of the context to run a forward on them in
        (:meth:`~llamafactory_video.model.families.base.VideoFamily.visual_injection`)."""
        embeds, encoded = self.embeds(forward["input_ids"], repeats, detach=False)
        kwargs = self.family.precomputed_forward_kwargs(self.model, forward, embeds)
        ids = forward["input_ids"]
        return kwargs, lambda: self.family.visual_injection(self.model, encoded, ids)
