r"""Trainer of ``stage: fastslow_ar``: the host's SFT trainer (generation, predictions, metrics) whose loss adds
the next-slot reconstruction loss, under the frame-causal block mask.

Per step: the video placeholders get slot ids from the same pooled grids the processor expanded them with; the
block mask replaces the 2-D attention mask (explicit M-RoPE positions are computed first when the collator did not
provide them); the vision tower's pooled features are kept by the pooling hook and the language model's final
hidden states by a forward hook; the head maps the summary of slot ``t``'s hidden states to the summary of slot
``t + 1``'s features (targets detached).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional

import numpy as np
import torch
from llamafactory.train.sft.trainer import CustomSeq2SeqTrainer
from peft import PeftModel
from typing_extensions import override

from ..._logging import get_logger
from ...model.fastslow import (
    frame_causal_mask,
    next_slot_pairs,
    reconstruction_loss,
    video_slot_ids,
)
from ...model.fastslow_head import (
    FastslowHeadConfig,
    get_head,
    load_head_state,
    save_head,
    split_head_state,
)
from ...model.families import family_for
from ...model.video_pooling import VideoPooling, find_vl_model
from ..trainer_utils import HeadCheckpointMixin, StepMetricsMixin


logger = get_logger(__name__)

METRIC_PREFIX = "fastslow"


def block_mask_inputs(
    inputs: dict[str, Any], core: torch.nn.Module, pooling: VideoPooling, mask_dtype: torch.dtype | None
) -> dict[str, Any]:
    r"""Replace ``attention_mask`` ``(B, L)`` with the frame-causal ``(B, 1, L, L)`` mask (boolean when
    ``mask_dtype`` is None, else additive in that dtype) and make sure ``position_ids`` are explicit (a 4-D mask
    cannot be used to derive them)."""
    grid = inputs.get("video_grid_thw")
    if grid is None or grid.numel() == 0:
        return inputs
    inputs = dict(inputs)
    attention_mask = inputs.get("attention_mask")
    if attention_mask is not None and attention_mask.dim() != 2:
        return inputs
    family = family_for(core)
    if inputs.get("position_ids") is None:
        inputs["position_ids"] = family.rope_index(core, inputs)
    counts = family.fastslow_slot_counts(grid, family.merge_size(core), pooling)
    slot_ids = video_slot_ids(inputs["input_ids"], family.video_token_id(core.config), counts)
    inputs["attention_mask"] = frame_causal_mask(slot_ids, attention_mask, dtype=mask_dtype)
    return inputs


class FastslowTrainer(HeadCheckpointMixin, StepMetricsMixin, CustomSeq2SeqTrainer):
    metric_prefix = METRIC_PREFIX

    def __init__(
        self,
        pooling: VideoPooling,
        head_config: FastslowHeadConfig,
        use_block_mask: bool,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.pooling = pooling
        self.head_config = head_config
        self.use_block_mask = use_block_mask
        self.loss_weight = float(self.finetuning_args.fastslow_ar_loss_weight)
        self.core = find_vl_model(self.model)
        self.family = family_for(self.core)
        self.video_token_id = self.family.video_token_id(self.core.config)
        self.merge_size = self.family.merge_size(self.core)
        # sdpa takes a boolean mask whatever the compute dtype (an additive one must match the query dtype, which
        # autocast / upcast trainable parameters make hard to predict); eager adds the mask to float32-promoted scores
        impl = str(getattr(self.core.config, "_attn_implementation", None) or "sdpa")
        self.mask_dtype = None if impl == "sdpa" else torch.float32
        self._hidden: Optional[torch.Tensor] = None
        self._eval_parts: dict[str, list[float]] = defaultdict(list)
        self.family.language_model(self.core).register_forward_hook(self._keep_hidden)

    def _keep_hidden(self, module, args, output) -> None:
        self._hidden = output[0] if isinstance(output, tuple) else output.last_hidden_state

    # ------------------------------------------------------------------ loss
    def _reconstruction(self, input_ids: torch.Tensor, grid: Optional[torch.Tensor]) -> tuple[torch.Tensor, int]:
        head = get_head(self.model)
        hidden, features = self._hidden, self.core.last_pooled_video_features
        self._hidden, self.core.last_pooled_video_features = None, None
        head_dtype = next(head.parameters()).dtype
        if grid is None or grid.numel() == 0 or features is None or hidden is None:
            # no video on this rank: touch the head with zero weight so DDP's gradient reduction does not hang
            probe = torch.zeros(1, self.head_config.hidden_size, device=input_ids.device, dtype=head_dtype)
            return head(probe).sum() * 0.0, 0
        rows = hidden[input_ids == self.video_token_id]
        grids = self.pooling.grids(grid, self.merge_size)
        pair_inputs, targets = next_slot_pairs(rows, features, grids, self.head_config.summary_size)
        pred = head(pair_inputs.to(head_dtype))
        return reconstruction_loss(pred, targets.to(head_dtype), self.head_config.loss), int(pair_inputs.shape[0])

    @override
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        grid = inputs.get("video_grid_thw")
        if self.use_block_mask:
            inputs = block_mask_inputs(inputs, self.core, self.pooling, self.mask_dtype)
        self.core.last_pooled_video_features = None
        outputs = model(**inputs)
        lm_loss = outputs["loss"] if isinstance(outputs, dict) else outputs[0]
        rec_loss, pairs = self._reconstruction(inputs["input_ids"], grid)
        loss = lm_loss + self.loss_weight * rec_loss
        with torch.no_grad():
            parts = {"lm_loss": lm_loss.item(), "autoregressive_loss": rec_loss.item()}
            if model.training:
                for key, value in parts.items():
                    self.record(key, value)
                self.record("next_slot_pairs", pairs)
                video_tokens = int((inputs["input_ids"] == self.video_token_id).sum())
                self.record("video_tokens", video_tokens / inputs["input_ids"].shape[0])
                if grid is not None and grid.numel():
                    stock = int((grid.prod(-1) // self.merge_size**2).sum())
                    self.record("token_ratio", video_tokens / max(stock, 1))
            else:
                for key, value in parts.items():
                    self._eval_parts[key].append(value)
        return (loss, outputs) if return_outputs else loss

    @override
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval", **gen_kwargs):
        self._eval_parts.clear()
        metrics = super().evaluate(
            eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix, **gen_kwargs
        )
        if self._eval_parts:
            extra = {
                f"{metric_key_prefix}_{METRIC_PREFIX}/{key}": round(float(np.mean(values)), 4)
                for key, values in self._eval_parts.items()
            }
            self._eval_parts.clear()
            metrics.update(extra)
            self.log(extra)
        return metrics

    # ------------------------------------------------------------------ saving and resuming
    @override
    def _save(self, output_dir: Optional[str] = None, state_dict=None):
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if state_dict is None:
            head_state = get_head(self.model).state_dict()
            if not isinstance(self.model, PeftModel):
                state_dict, _ = split_head_state(self.model.state_dict())
        else:
            state_dict, head_state = split_head_state(state_dict)
        super()._save(output_dir, state_dict=state_dict)
        save_head(output_dir, self.head_config, head_state)
        self.pooling.save(output_dir)

    def _load_head(self, checkpoint_dir: str) -> None:
        head = get_head(self.model)
        device = next(head.parameters()).device
        head.load_state_dict({k: v.to(device) for k, v in load_head_state(checkpoint_dir).items()})
        logger.info_rank0(f"Restored the reconstruction head from {checkpoint_dir}.")
