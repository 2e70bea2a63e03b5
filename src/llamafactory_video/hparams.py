"""Argument fields of every plugin stage, merged into LlamaFactory's ``FinetuningArguments``.

LlamaFactory's ``get_train_args`` unpacks exactly five dataclasses and a field name must be unique
across them, so each stage's keys carry the stage's prefix and live in a mixin that
:class:`VideoFinetuningArguments` adds to the host's ``FinetuningArguments`` (the stage table,
``registry.StageSpec.arguments``, names each stage's mixin). ``host/parser.py``
swaps that subclass into the host parser; nothing else changes for the stock stages.
"""

import os
import sys
import typing
from dataclasses import dataclass, field, fields
from typing import Literal, Optional

from llamafactory.hparams.finetuning_args import FinetuningArguments
from llamafactory.hparams.generating_args import GeneratingArguments
from llamafactory.hparams.model_args import ModelArguments

from ._literals import check_literal_fields
from .registry import STAGES


HOST_STAGES: tuple[str, ...] = typing.get_args(typing.get_type_hints(FinetuningArguments)["stage"])
ALL_STAGES: tuple[str, ...] = HOST_STAGES + tuple(name for name in STAGES if name not in HOST_STAGES)
StageName = Literal[ALL_STAGES]  # type: ignore[valid-type]
STAGE_NOTE = (
    f"known stages: {', '.join(HOST_STAGES)} (LlamaFactory) and "
    f"{', '.join(name for name in STAGES if name not in HOST_STAGES)} (llamafactory-video)"
)


class _ChecksLiterals:
    r"""A stage mixin built on its own (tests, tools) checks its ``Literal`` keys too; inside
    ``VideoFinetuningArguments`` the combined ``__post_init__`` checks every mixin's keys."""

    def __post_init__(self):
        check_literal_fields(self)


@dataclass
class ActionClsArguments(_ChecksLiterals):
    r"""Keys of the ``action_cls`` stage (seed 001): the last hidden state of an ``<ACTION>`` token feeds a
    classifier."""

    num_action_classes: Optional[int] = field(
        default=None,
        metadata={
            "help": "Number of action classes (101 for UCF101, 174 for Something-Something v2). "
            "Inferred from the label-names file when omitted."
        },
    )
    action_decoder_type: Literal["linear", "mlp"] = field(
        default="linear",
        metadata={
            "help": "Classifier head on the <ACTION> hidden state: `linear` or `mlp` "
            "(hidden -> size -> GELU -> classes)."
        },
    )
    action_decoder_hidden_size: Optional[int] = field(
        default=None,
        metadata={"help": "Inner width of the `mlp` head. Defaults to the model's hidden size."},
    )
    action_decoder_dropout: float = field(
        default=0.0,
        metadata={"help": "Dropout applied to the <ACTION> hidden state before the head."},
    )
    action_decoder_path: Optional[str] = field(
        default=None,
        metadata={
            "help": "Directory (or file) holding a saved `action_decoder.safetensors` to initialise the head and the "
            "<ACTION> embedding from, e.g. an earlier run's output_dir."
        },
    )
    action_token: str = field(
        default="<ACTION>",
        metadata={"help": "The special token whose last-layer hidden state is classified. Added to the tokenizer."},
    )
    action_token_lr_scale: float = field(
        default=1.0,
        metadata={
            "help": "Learning rate of the <ACTION> token embedding = learning_rate * this scale. The embedding trains "
            "on its own, so the embedding matrix stays frozen under LoRA/DoRA."
        },
    )
    action_label_smoothing: float = field(
        default=0.0,
        metadata={"help": "Label smoothing of the classification cross-entropy, in [0, 1)."},
    )
    action_lm_loss_weight: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the language-model loss on the assistant answer added to the classification loss. "
            "0 (the default) ignores every LM label and drops the answer from the input."
        },
    )
    action_invalid_samples: Literal["error", "skip"] = field(
        default="error",
        metadata={
            "help": "What to do with samples that cannot train (no <ACTION> token, bad label, undecodable video, "
            "prompt longer than cutoff_len): `error` stops before training and lists them; "
            "`skip` drops and counts them."
        },
    )
    action_label_names: Optional[str] = field(
        default=None,
        metadata={
            "help": "JSON list (or one name per line text file) of class names, index = label. Defaults to the "
            "`label_names` file declared by the dataset in dataset_info.json."
        },
    )
    action_head_warmup_ratio: float = field(
        default=0.1,
        metadata={
            "help": "Fraction of the training steps during which only the head learns (the backbone and the <ACTION> "
            "embedding get no gradient from the classification loss): a linear probe first, then fine-tuning "
            "(LP-FT). Keeps a random head from sending large, meaningless gradients into the backbone. 0 = off."
        },
    )
    action_divergence_check: Literal["stop", "warn", "off"] = field(
        default="stop",
        metadata={
            "help": "Watch the logged classification loss: a non-finite loss, or a classifier that learned and then "
            "fell back to chance (loss near ln(num_classes) and batch accuracy near 1/num_classes for "
            "`action_divergence_patience` logging windows). `stop` ends the run with a message, `warn` logs a "
            "warning and trains on, `off` does not look."
        },
    )
    action_divergence_patience: int = field(
        default=3,
        metadata={"help": "Consecutive logging windows at chance before `action_divergence_check` acts."},
    )

    def validate(self) -> None:
        if self.num_action_classes is not None and self.num_action_classes < 2:
            raise ValueError(
                f"`num_action_classes` must be at least 2, got {self.num_action_classes}. "
                "Set it to the number of classes in your dataset, or omit it to infer it from the label names."
            )
        if self.action_decoder_type == "linear" and self.action_decoder_hidden_size is not None:
            raise ValueError(
                "`action_decoder_hidden_size` only applies to `action_decoder_type: mlp`. "
                "Remove it, or set `action_decoder_type: mlp`."
            )
        if self.action_decoder_hidden_size is not None and self.action_decoder_hidden_size < 1:
            raise ValueError(
                "`action_decoder_hidden_size` must be a positive integer (or null for the model's hidden size)."
            )
        if not 0.0 <= self.action_label_smoothing < 1.0:
            raise ValueError(f"`action_label_smoothing` must be in [0, 1), got {self.action_label_smoothing}.")
        if not 0.0 <= self.action_decoder_dropout < 1.0:
            raise ValueError(f"`action_decoder_dropout` must be in [0, 1), got {self.action_decoder_dropout}.")
        if self.action_token_lr_scale < 0:
            raise ValueError(
                "`action_token_lr_scale` must be >= 0 (0 freezes the <ACTION> embedding), "
                f"got {self.action_token_lr_scale}."
            )
        if self.action_lm_loss_weight < 0:
            raise ValueError(f"`action_lm_loss_weight` must be >= 0, got {self.action_lm_loss_weight}.")
        if not self.action_token.strip():
            raise ValueError("`action_token` must be a non-empty string such as `<ACTION>`.")
        if not 0.0 <= self.action_head_warmup_ratio < 1.0:
            raise ValueError(f"`action_head_warmup_ratio` must be in [0, 1), got {self.action_head_warmup_ratio}.")
        if self.action_divergence_patience < 1:
            raise ValueError(f"`action_divergence_patience` must be >= 1, got {self.action_divergence_patience}.")


REWARD_NAMES = ("cider_d", "bleu_4")


def parse_reward_weights(spec: str) -> dict[str, float]:
    r"""``"cider_d=0.7,bleu_4=0.3"`` -> ``{"cider_d": 0.7, "bleu_4": 0.3}`` with names checked."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in REWARD_NAMES:
            raise ValueError(
                f"`scst_reward_weights` entry `{part}` is not `<reward>=<weight>` with a reward in {REWARD_NAMES}; "
                "write e.g. `cider_d=0.7,bleu_4=0.3`."
            )
        weights[name] = float(value)
    if not weights or all(w == 0 for w in weights.values()):
        raise ValueError("`scst_reward_weights` needs at least one non-zero weight, e.g. `cider_d=1.0`.")
    return weights


@dataclass
class ScstArguments(_ChecksLiterals):
    r"""Keys of the ``scst`` stage (seed 000): self-critical sequence training of a video captioner."""

    scst_num_samples: int = field(default=5, metadata={"help": "Captions sampled per video at each step (K)."})
    scst_baseline: Literal["greedy", "beam", "mean", "grpo"] = field(
        default="greedy",
        metadata={
            "help": "Reward baseline: `greedy` / `beam` (the caption decoded without gradient in eval mode), "
            "`mean` (average reward of the other K-1 samples of the same video, RLOO) or `grpo` (group-normalised "
            "advantage (r - mean) / (std + 1e-4) over the K samples of the video)."
        },
    )
    scst_beam_width: int = field(default=3, metadata={"help": "Beam width of the `beam` baseline (seed: 3)."})
    scst_temperature: float = field(default=0.7, metadata={"help": "Sampling temperature of the SCST samples."})
    scst_top_p: float = field(default=0.9, metadata={"help": "Nucleus sampling top_p of the SCST samples."})
    scst_top_k: int = field(default=50, metadata={"help": "Top-k of the SCST samples (0 disables)."})
    scst_max_new_tokens: int = field(default=32, metadata={"help": "Maximum caption length in tokens (seed: 32)."})
    scst_reward_weights: str = field(
        default="cider_d=1.0",
        metadata={"help": "Reward mix, e.g. `cider_d=0.7,bleu_4=0.3` (the seed's). Rewards: cider_d, bleu_4."},
    )
    scst_length_penalty: float = field(
        default=0.0,
        metadata={
            "help": "Subtract `scst_length_penalty * |words - scst_target_length|` from the reward (seed: 0.01)."
        },
    )
    scst_target_length: int = field(
        default=32,
        metadata={"help": "Target caption length in words of `scst_length_penalty` / the `length` reward (seed: 32)."},
    )
    # ---- rewards as named callables with weights (rewards/registry.py); replaces the two keys above when set
    scst_rewards: Optional[str] = field(
        default=None,
        metadata={
            "help": "Weighted rewards, e.g. `cider_d:0.7,bleu_4:0.3,length:1.0`. Built-ins: cider_d, bleu_1..bleu_4, "
            "rouge_l, meteor (needs Java), length, exact_match, option_accuracy, format; or a function by import "
            "path `my_pkg.rewards:fn[:weight]` taking (completions, references, **columns) and returning one float "
            "per completion. Unset: `scst_reward_weights` and `scst_length_penalty` make the reward."
        },
    )
    scst_length_slope: float = field(
        default=0.01,
        metadata={"help": "Slope of the `length` reward `-slope * |words - scst_target_length|` (seed: 0.01)."},
    )
    scst_format_pattern: Optional[str] = field(
        default=None,
        metadata={
            "help": "Regular expression the `format` reward requires the whole completion to match (DOTALL). "
            "Default: `<think>...</think><answer>...</answer>`."
        },
    )
    # ---- the objective (train/scst/objectives.py)
    scst_objective: Literal["reinforce", "ppo_clip"] = field(
        default="reinforce",
        metadata={
            "help": "`reinforce`: -(r - b) * mean_t log p (the seed's SCST); `ppo_clip`: PPO's clipped ratio "
            "against the log-probs of the sampling pass, for `scst_updates_per_batch` > 1."
        },
    )
    scst_clip_epsilon: float = field(
        default=0.2, metadata={"help": "Clip range of `ppo_clip`: the ratio is clipped to [1 - eps, 1 + eps]."}
    )
    scst_updates_per_batch: int = field(
        default=1,
        metadata={
            "help": "Optimizer updates on each batch of samples (PPO epochs); > 1 needs `scst_objective: ppo_clip`. "
            "Each batch is drawn this many times in a row, so an epoch has this many times more steps."
        },
    )
    scst_kl_coef: float = field(
        default=0.0,
        metadata={"help": "Weight beta of the KL term to the reference model added to the loss (0 = off)."},
    )
    scst_kl_reference: Literal["auto", "base", "frozen_copy"] = field(
        default="auto",
        metadata={
            "help": "Reference model of the KL term: `base` (the model with its LoRA adapter disabled), "
            "`frozen_copy` (a frozen copy of the starting model, e.g. the XE adapter) or `auto` (base under "
            "LoRA, frozen_copy otherwise)."
        },
    )
    # --- one vision pass per step (train/scst/vision_pass.py, docs/stages/scst.md "One vision pass per step")
    scst_vision_pass: Literal["once", "per_call"] = field(
        default="once",
        metadata={
            "help": "`once`: encode each video once per step and give the samples' and the baseline's `generate` "
            "and the teacher-forced pass precomputed visual features (the tower / projector get their gradient "
            "through that one pass); `per_call`: every call runs the vision tower on its own copy of the pixels "
            "(2K+1 passes a step)."
        },
    )
    # --- samples and degeneration (train/scst/samples.py, docs/stages/scst.md "Samples and degeneration")
    scst_sample_log_steps: int = field(
        default=0,
        metadata={
            "help": "Every N optimizer steps, write the K samples (caption, reward, advantage, reward parts), the "
            "baseline caption and the references of up to `scst_sample_log_videos` videos to "
            "<output_dir>/scst_samples.jsonl and to the TensorBoard / W&B reporter. 0 = off."
        },
    )
    scst_sample_log_videos: int = field(
        default=4, metadata={"help": "Videos written per logged step by `scst_sample_log_steps` (rank 0's)."}
    )
    scst_degeneration_threshold: Optional[float] = field(
        default=None,
        metadata={
            "help": "Stop the run when one two-word opening (e.g. 'people are') starts at least this share of the "
            "samples of a logging window, in (0, 1]. Unset = only log the scst/degeneration/* metrics."
        },
    )
    scst_degeneration_min_samples: int = field(
        default=16,
        metadata={"help": "Smallest logging window (samples, all ranks) on which `scst_degeneration_threshold` acts."},
    )
    # --- scst_keep_best: held-out-free choice of the policy kept at the end (train/scst/selection.py) ---
    scst_keep_best: Literal["none", "train_reward"] = field(
        default="none",
        metadata={
            "help": "`train_reward`: score the greedy captions of the first `scst_keep_best_samples` TRAINING videos "
            "with the training reward before training and after every epoch, and end with the best of those "
            "policies (the starting one on ties), so SCST never ends below its start on that score. No held-out data "
            "is read. `none`: keep the last policy."
        },
    )
    scst_keep_best_samples: int = field(
        default=64, metadata={"help": "Training videos (the first N rows) scored by `scst_keep_best: train_reward`."}
    )

    def validate(self) -> None:
        if self.scst_num_samples < 1:
            raise ValueError("`scst_num_samples` must be at least 1.")
        if self.scst_keep_best_samples < 1:
            raise ValueError(f"`scst_keep_best_samples` must be at least 1, got {self.scst_keep_best_samples}.")
        if self.scst_baseline == "mean" and self.scst_num_samples < 2:
            raise ValueError("`scst_baseline: mean` averages the OTHER samples: set `scst_num_samples` >= 2.")
        if self.scst_beam_width < 1:
            raise ValueError("`scst_beam_width` must be at least 1.")
        if not 0.0 < self.scst_top_p <= 1.0:
            raise ValueError(f"`scst_top_p` must be in (0, 1], got {self.scst_top_p}.")
        if self.scst_temperature <= 0:
            raise ValueError(f"`scst_temperature` must be > 0, got {self.scst_temperature}.")
        if self.scst_max_new_tokens < 1:
            raise ValueError("`scst_max_new_tokens` must be at least 1.")
        if self.scst_length_penalty < 0:
            raise ValueError("`scst_length_penalty` must be >= 0 (it is subtracted).")
        if self.scst_length_slope < 0:
            raise ValueError(f"`scst_length_slope` must be >= 0, got {self.scst_length_slope}.")
        if self.scst_clip_epsilon <= 0:
            raise ValueError(f"`scst_clip_epsilon` must be > 0, got {self.scst_clip_epsilon}.")
        if self.scst_updates_per_batch < 1:
            raise ValueError("`scst_updates_per_batch` must be at least 1.")
        if self.scst_updates_per_batch > 1 and self.scst_objective != "ppo_clip":
            raise ValueError(
                "`scst_updates_per_batch` > 1 reuses old samples: set `scst_objective: ppo_clip`, whose clipped "
                "ratio keeps those updates close to the sampling policy."
            )
        if self.scst_kl_coef < 0:
            raise ValueError(f"`scst_kl_coef` must be >= 0, got {self.scst_kl_coef}.")
        if self.scst_baseline == "grpo" and self.scst_num_samples < 2:
            raise ValueError(
                "`scst_baseline: grpo` normalises over the K samples of a video: set `scst_num_samples` >= 2."
            )
        if self.scst_sample_log_steps < 0 or self.scst_sample_log_videos < 1:
            raise ValueError("`scst_sample_log_steps` must be >= 0 (0 = off) and `scst_sample_log_videos` >= 1.")
        threshold = self.scst_degeneration_threshold
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise ValueError(f"`scst_degeneration_threshold` is a share of samples in (0, 1], got {threshold}.")
        if self.scst_degeneration_min_samples < 1:
            raise ValueError("`scst_degeneration_min_samples` must be at least 1.")
        if self.scst_rewards is not None:
            if self.scst_reward_weights != "cider_d=1.0" or self.scst_length_penalty:
                raise ValueError(
                    "`scst_rewards` replaces `scst_reward_weights` and `scst_length_penalty`: write them into "
                    "`scst_rewards` (e.g. `cider_d:0.7,bleu_4:0.3,length:1.0` with `scst_length_slope: 0.01`)."
                )
            from .rewards.registry import check_reward_spec

            check_reward_spec(self.scst_rewards)
        else:
            parse_reward_weights(self.scst_reward_weights)

    def scst_reward_terms(self) -> tuple[list[tuple[str, float]], float]:
        r"""``(terms, length slope)``: ``scst_rewards`` parsed, or the older two keys as the same terms."""
        if self.scst_rewards is not None:
            from .rewards.registry import parse_reward_spec

            return parse_reward_spec(self.scst_rewards), self.scst_length_slope
        terms = list(parse_reward_weights(self.scst_reward_weights).items())
        if self.scst_length_penalty:
            terms.append(("length", 1.0))
        return terms, self.scst_length_penalty


FASTSLOW_STRATEGIES = ("interleave", "first_slow", "uniform")


@dataclass
class FastslowArArguments(_ChecksLiterals):
    r"""Keys of the ``fastslow_ar`` stage (seed 004): slow / fast slots, a frame-causal mask and next-slot
    feature reconstruction added to the LM loss."""

    fastslow_slow_stride: int = field(
        default=2,
        metadata={
            "help": "Pooling stride of slow slots on Qwen's merged token grid (28 px tokens). 2 keeps the pixel "
            "footprint of the seed's stride 4 on a 14 px LLaVA grid; 1 = no pooling."
        },
    )
    fastslow_fast_stride: int = field(
        default=4,
        metadata={"help": "Pooling stride of fast slots (the seed's 8 on a 14 px grid = 4 on Qwen's merged grid)."},
    )
    fastslow_pool_mode: Literal["average", "max", "bilinear"] = field(
        default="average", metadata={"help": "Spatial pooling of a slot: `average`, `max` or `bilinear`."}
    )
    fastslow_sampling_strategy: Literal["interleave", "first_slow", "uniform"] = field(
        default="interleave",
        metadata={
            "help": "Which slots are slow: `interleave` (S F S F ...), `first_slow` (the first ratio*N slots) or "
            "`uniform` (ratio*N slow slots spread evenly)."
        },
    )
    fastslow_slow_frame_ratio: float = field(
        default=0.5,
        metadata={"help": "Fraction of slow slots for `first_slow` / `uniform` (interleave is always 1:1)."},
    )
    fastslow_frame_causal_mask: bool = field(
        default=True,
        metadata={
            "help": "Block mask: a slot's tokens see their own slot and earlier slots, never a later one; text stays "
            "causal. Needs sdpa or eager attention."
        },
    )
    fastslow_mask_fallback: Literal["error", "causal"] = field(
        default="error",
        metadata={
            "help": "What to do when the attention implementation cannot take the block mask (flash-attention): "
            "`error` stops before training, `causal` trains with the plain causal mask and says so."
        },
    )
    fastslow_ar_loss: Literal["cosine", "mse"] = field(
        default="cosine",
        metadata={"help": "Next-slot reconstruction loss: `cosine` (1 - cosine similarity) or `mse` (the seed's)."},
    )
    fastslow_ar_loss_weight: float = field(
        default=0.15, metadata={"help": "Weight of the reconstruction loss added to the LM loss (seed: 0.15)."}
    )
    fastslow_summary_size: int = field(
        default=1,
        metadata={
            "help": "Slots are summarised to a k x k grid before prediction so slow and fast slots compare "
            "(1 = slot mean)."
        },
    )
    fastslow_head_hidden_size: Optional[int] = field(
        default=None, metadata={"help": "Inner width of the reconstruction MLP. Defaults to the model's hidden size."}
    )
    fastslow_head_path: Optional[str] = field(
        default=None,
        metadata={"help": "Directory or file with a saved `fastslow_head.safetensors` to initialise the head from."},
    )

    def validate(self) -> None:
        for key in ("fastslow_slow_stride", "fastslow_fast_stride"):
            if getattr(self, key) < 1:
                raise ValueError(f"`{key}` must be an integer >= 1 (1 = no pooling), got {getattr(self, key)}.")
        if self.fastslow_fast_stride < self.fastslow_slow_stride:
            raise ValueError(
                f"`fastslow_fast_stride` ({self.fastslow_fast_stride}) is smaller than `fastslow_slow_stride` "
                f"({self.fastslow_slow_stride}): fast slots are the coarse ones. Swap the two values."
            )
        if not 0.0 <= self.fastslow_slow_frame_ratio <= 1.0:
            raise ValueError(
                f"`fastslow_slow_frame_ratio` must be in [0, 1] (0 = all fast, 1 = all slow), "
                f"got {self.fastslow_slow_frame_ratio}."
            )
        if self.fastslow_ar_loss_weight < 0:
            raise ValueError(
                "`fastslow_ar_loss_weight` must be >= 0 (0 trains the LM loss only), "
                f"got {self.fastslow_ar_loss_weight}."
            )
        if self.fastslow_summary_size < 1:
            raise ValueError(f"`fastslow_summary_size` must be >= 1, got {self.fastslow_summary_size}.")
        if self.fastslow_head_hidden_size is not None and self.fastslow_head_hidden_size < 1:
            raise ValueError("`fastslow_head_hidden_size` must be a positive integer (or null for the hidden size).")
        for key in ("use_asft_loss", "use_dft_loss", "use_eaft_loss"):
            if getattr(self, key, False):
                raise ValueError(
                    f"`{key}` replaces the LM loss of stock sft; `fastslow_ar` adds its reconstruction loss to the "
                    f"standard LM loss. Remove `{key}`."
                )


@dataclass
class SparcAlignArguments(_ChecksLiterals):
    r"""Keys of the ``sparc_align`` stage (seed 002): video-text contrastive fine-tuning of a CLIP / SigLIP dual
    encoder with a global loss plus the SPARC fine-grained token-to-patch loss."""

    sparc_global_loss: Literal["infonce", "multi_positive"] = field(
        default="multi_positive",
        metadata={
            "help": "Global loss: `infonce` (CLIP's symmetric InfoNCE, every other caption is a negative) or "
            "`multi_positive` (captions of the same video in the batch are positives, not negatives)."
        },
    )
    sparc_global_weight: float = field(default=1.0, metadata={"help": "Weight of the global loss."})
    sparc_local_weight: float = field(
        default=1.0, metadata={"help": "Weight of the SPARC local loss (0 turns it off)."}
    )
    sparc_local_layer: Literal["before_projector", "after_embedding", "all_layers"] = field(
        default="before_projector",
        metadata={
            "help": "Where the local loss reads token / patch features: `before_projector` (last layer, the seed's "
            "winner), `after_embedding` (embedding output) or `all_layers` (every layer, weights 0.1 -> 1)."
        },
    )
    sparc_sparsity_threshold: Optional[float] = field(
        default=None,
        metadata={"help": "Alignment weights below this (after min-max over patches) are zeroed. Default 1/P."},
    )
    sparc_keep_patches: Optional[int] = field(
        default=None,
        metadata={
            "help": "Keep only the top-k patches per token instead of thresholding (the seed kept 36 of 2356). "
            "Exclusive with sparc_sparsity_threshold."
        },
    )
    sparc_local_temperature: Optional[float] = field(
        default=None,
        metadata={"help": "Temperature of the local token-vs-token logits. Default: the learned global temperature."},
    )
    sparc_language_mask: bool = field(
        default=True,
        metadata={
            "help": "Drop tokens of words without visual content (stop words) from the local loss; padding and "
            "special tokens are always dropped."
        },
    )
    sparc_stop_words: Optional[str] = field(
        default=None,
        metadata={"help": "Text file with one stop word per line, replacing the built-in list of the language mask."},
    )
    sparc_token_collapse_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of the penalty on mean token-token cosine similarity (collapse guard, seed 1.3)."},
    )
    sparc_patch_collapse_weight: float = field(
        default=0.0,
        metadata={"help": "Weight of the penalty on mean patch-patch cosine similarity (collapse guard, seed 1.3)."},
    )
    sparc_batch_grouping: Literal["random", "group", "separate"] = field(
        default="random",
        metadata={
            "help": "Training batches: `random`, `group` (captions of a video side by side, so they share batches) "
            "or `separate` (at most one caption per video in a batch)."
        },
    )
    sparc_aggregation: Literal["mean", "transformer"] = field(
        default="mean",
        metadata={
            "help": "Temporal aggregation of the per-frame embeddings: `mean`, or `transformer` (a residual "
            "one-layer transformer over the frames, zero-initialised so it starts as the mean)."
        },
    )
    sparc_freeze_text_tower: bool = field(
        default=False, metadata={"help": "Freeze the text tower (text encoder and its projection)."}
    )
    sparc_freeze_vision_tower: bool = field(
        default=False,
        metadata={
            "help": "Freeze the vision tower (vision encoder and its projection). The host's `freeze_vision_tower` "
            "(default true, meant for MLLMs) does not apply to this stage."
        },
    )
    sparc_max_logit_scale: float = field(
        default=4.6052,
        metadata={"help": "Upper clamp of the learned log inverse temperature (CLIP's ln 100)."},
    )
    sparc_text_max_length: Optional[int] = field(
        default=None,
        metadata={"help": "Caption length limit in tokens. Default: the tokenizer's model_max_length (77 for CLIP)."},
    )

    def validate(self) -> None:
        for key in (
            "sparc_global_weight",
            "sparc_local_weight",
            "sparc_token_collapse_weight",
            "sparc_patch_collapse_weight",
        ):
            if getattr(self, key) < 0:
                raise ValueError(f"`{key}` must be >= 0, got {getattr(self, key)}.")
        if self.sparc_global_weight == 0 and self.sparc_local_weight == 0:
            raise ValueError("`sparc_global_weight` and `sparc_local_weight` are both 0: set at least one above 0.")
        if self.sparc_sparsity_threshold is not None and self.sparc_keep_patches is not None:
            raise ValueError(
                "Set either `sparc_sparsity_threshold` (a fraction) or `sparc_keep_patches` (top-k), not both."
            )
        if self.sparc_sparsity_threshold is not None and not 0.0 <= self.sparc_sparsity_threshold <= 1.0:
            raise ValueError(
                f"`sparc_sparsity_threshold` is compared with min-max normalised similarities, so it must be in "
                f"[0, 1]; got {self.sparc_sparsity_threshold}. Omit it for SPARC's 1/P."
            )
        if self.sparc_keep_patches is not None and self.sparc_keep_patches < 1:
            raise ValueError(f"`sparc_keep_patches` must be >= 1, got {self.sparc_keep_patches}.")
        if self.sparc_local_temperature is not None and self.sparc_local_temperature <= 0:
            raise ValueError("`sparc_local_temperature` must be > 0 (or omitted to use the learned temperature).")
        if self.sparc_stop_words is not None and not os.path.isfile(self.sparc_stop_words):
            raise ValueError(f"`sparc_stop_words` file `{self.sparc_stop_words}` does not exist (one word per line).")
        if self.sparc_text_max_length is not None and self.sparc_text_max_length < 2:
            raise ValueError("`sparc_text_max_length` must be at least 2 (start and end tokens).")
        finetuning_type = getattr(self, "finetuning_type", "full")
        if finetuning_type not in ("full", "lora"):
            raise ValueError(
                f"`stage: sparc_align` trains with `finetuning_type: full` or `lora`, got `{finetuning_type}`. "
                "To train one tower only, use `full` with `sparc_freeze_text_tower` / `sparc_freeze_vision_tower`."
            )
        if self.sparc_freeze_text_tower and self.sparc_freeze_vision_tower and finetuning_type == "lora":
            raise ValueError(
                "Both towers are frozen, so LoRA has nothing to adapt: unfreeze one tower "
                "(`sparc_freeze_text_tower: false` or `sparc_freeze_vision_tower: false`)."
            )


@dataclass
class CaptionWatchArguments(_ChecksLiterals):
    r"""Keys the plugin adds to stock stages: the caption degeneration watch for cross-entropy captioning with
    ``stage: sft`` (seed 000 stage 1; ``callbacks/degeneration.py``, installed by ``host/tuner.py``)."""

    caption_degeneration_watch: Literal["off", "log", "stop"] = field(
        default="off",
        metadata={
            "help": "stage sft: at every evaluation, caption the first `caption_degeneration_prompts` eval prompts "
            "greedily and log caption/degeneration/* (top two-word opening share, distinct-1/2, repeated 3-grams). "
            "`stop` also ends the run when the opening share reaches `caption_degeneration_threshold`."
        },
    )
    caption_degeneration_prompts: int = field(
        default=16, metadata={"help": "Eval prompts captioned by `caption_degeneration_watch` (the first ones)."}
    )
    caption_degeneration_threshold: float = field(
        default=0.8,
        metadata={"help": "Top two-word opening share, in (0, 1], at which `caption_degeneration_watch: stop` stops."},
    )
    caption_degeneration_max_new_tokens: int = field(
        default=32, metadata={"help": "Caption length cap (tokens) of the watch's greedy captions."}
    )

    def validate(self) -> None:
        if self.caption_degeneration_prompts < 1 or self.caption_degeneration_max_new_tokens < 1:
            raise ValueError("`caption_degeneration_prompts` and `caption_degeneration_max_new_tokens` must be >= 1.")
        if not 0.0 < self.caption_degeneration_threshold <= 1.0:
            raise ValueError(
                f"`caption_degeneration_threshold` is a share of captions in (0, 1], "
                f"got {self.caption_degeneration_threshold}."
            )
        stage = getattr(self, "stage", "sft")
        if self.caption_degeneration_watch != "off" and stage != "sft":
            hint = " (`stage: scst` has `scst_degeneration_threshold`)" if stage == "scst" else ""
            raise ValueError(
                f"`caption_degeneration_watch` watches cross-entropy captioning with `stage: sft`, not `{stage}`"
                f"{hint}; remove it or set it to `off`."
            )


SHARED_ARGUMENT_CLASSES: tuple[type, ...] = (CaptionWatchArguments,)
"""Mixins whose keys every stage's arguments carry (stock stages included)."""

STAGE_ARGUMENT_CLASSES: dict[str, type] = {
    name: spec.load_arguments() for name, spec in STAGES.items() if spec.arguments
}
"""Stage -> its argument mixin, read from the stage table (``registry.StageSpec.arguments``): only mixins of
registered stages join the host's arguments."""


def _validate_active_stage(args) -> None:
    mixin = STAGE_ARGUMENT_CLASSES.get(args.stage)
    if mixin is not None and args.stage in STAGES:
        mixin.validate(args)


def _build_finetuning_arguments() -> type:
    mixins = tuple(STAGE_ARGUMENT_CLASSES.values())
    mixins += SHARED_ARGUMENT_CLASSES

    def __post_init__(self):
        # before the host's own checks, so a typo is reported as a typo
        check_literal_fields(self, owners=(cls, *mixins), notes={"stage": STAGE_NOTE})
        FinetuningArguments.__post_init__(self)
        _validate_active_stage(self)
        for shared in SHARED_ARGUMENT_CLASSES:
            shared.validate(self)

    namespace = {
        "__doc__": "LlamaFactory's ``FinetuningArguments`` plus the keys of every registered plugin stage.",
        "__module__": __name__,
        "__annotations__": {"stage": StageName},
        "stage": field(
            default="sft",
            metadata={"help": "Which stage will be performed in training. Video stages: " + ", ".join(STAGES) + "."},
        ),
        "__post_init__": __post_init__,
    }
    cls = dataclass(type("VideoFinetuningArguments", (*mixins, FinetuningArguments), namespace))
    return cls


VideoFinetuningArguments = _build_finetuning_arguments()


@dataclass
class VideoGeneratingArguments(GeneratingArguments):
    r"""LlamaFactory's ``GeneratingArguments`` plus the seed's caption decoding keys. One set of generation keys
    serves a stock ``sft`` predict run, the ``scst`` baseline decoding and its ``do_predict``, so the numbers a user
    compares are produced the same way. Unset keys are not passed to ``generate``."""

    min_new_tokens: Optional[int] = field(
        default=None, metadata={"help": "Minimum number of generated tokens (the seed's min_length 6 for captions)."}
    )
    no_repeat_ngram_size: Optional[int] = field(
        default=None, metadata={"help": "Forbid repeating n-grams of this size in generations (the seed's 3)."}
    )

    def __post_init__(self):
        check_literal_fields(self, owners=(VideoGeneratingArguments,))

    def to_dict(self, obey_generation_config: bool = False) -> dict:
        args = super().to_dict(obey_generation_config=obey_generation_config)
        for key in ("min_new_tokens", "no_repeat_ngram_size"):
            if args.get(key) is None:
                args.pop(key, None)
        return args


@dataclass
class VideoModelArguments(ModelArguments):
    r"""LlamaFactory's ``ModelArguments`` plus visual token pooling for the families that pool, usable by any stage
    (stock ``sft`` included; seed 003's short-video QA on one GPU)."""

    video_token_pool_stride: int = field(
        default=1,
        metadata={
            "help": "Pool every video slot (2 frames) with this stride on the merged token grid (families that pool: "
            "Qwen2-VL, Qwen2.5-VL, Qwen3-VL; docs/families.md): 2 = 4x fewer video tokens, 1 = off. Placeholders, "
            "features and M-RoPE positions are pooled together. Give the same key at inference (a fastslow_ar run "
            "saves its own pooling beside the adapter)."
        },
    )
    video_token_pool_mode: Literal["average", "max", "bilinear"] = field(
        default="average", metadata={"help": "Pooling of `video_token_pool_stride`: `average`, `max` or `bilinear`."}
    )
    video_backend: Literal["pyav", "host", "decord"] = field(
        default="pyav",
        metadata={
            "help": "How video files are read, for every stage and family: `pyav` = llamafactory-video's frame "
            "sampler (the host's frame indices and bit-identical frames, decoded by seeking to the keyframe before "
            "each sampled frame and skipping non-reference frames; falls back to `host` on files it cannot index); "
            "`host` = LlamaFactory's own loop that decodes every frame from the start; `decord` = the host's frame "
            "indices read with decord's get_batch (needs `pip install decord`)."
        },
    )
    video_frame_cache: Optional[str] = field(
        default=None,
        metadata={
            "help": "Directory of an on-disk frame cache: each video's sampled frames at the processor's resolution "
            "are decoded once and reused by later epochs, ranks, workers, check-data and predict "
            "(`llamafactory-video cache-frames` fills it ahead of training). Unset = no cache."
        },
    )

    def __post_init__(self):
        check_literal_fields(self, owners=(VideoModelArguments,))
        if self.video_backend == "decord":
            import importlib.util

            if importlib.util.find_spec("decord") is None:
                raise ValueError(
                    "`video_backend: decord` needs the decord package, which is not importable here: "
                    "`pip install decord` (or `.[decord]`), or use `video_backend: pyav` (the default)."
                )
        super().__post_init__()
        if int(self.video_token_pool_stride) != self.video_token_pool_stride or self.video_token_pool_stride < 1:
            raise ValueError(
                "`video_token_pool_stride` must be an integer >= 1 (1 = no pooling), "
                f"got {self.video_token_pool_stride}."
            )


def plugin_keys() -> frozenset[str]:
    r"""Every key llamafactory-video adds to the host's arguments (stage mixins, model and generation keys)."""
    keys = {f.name for mixin in STAGE_ARGUMENT_CLASSES.values() for f in fields(mixin)}
    keys |= {f.name for mixin in SHARED_ARGUMENT_CLASSES for f in fields(mixin)}
    for mine, host in ((VideoModelArguments, ModelArguments), (VideoGeneratingArguments, GeneratingArguments)):
        keys |= {f.name for f in fields(mine)} - {f.name for f in fields(host)}
    return frozenset(keys)


INITIALISED = True
"""Set last: ``host/patches.py`` sees a half-initialised module (imported while the host's parser loads) by its
absence and leaves the swap to the block below."""

# Imported before LlamaFactory's parser finished loading? Its patch found this module half-initialised and
# left the swap to us.
if "llamafactory.hparams.parser" in sys.modules:
    from ._bootstrap import is_disabled

    if not is_disabled():
        from .host.parser import install_into_parser

        install_into_parser(sys.modules["llamafactory.hparams.parser"])
