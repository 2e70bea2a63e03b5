"""Argument fields of every plugin stage, merged into LlamaFactory's ``FinetuningArguments``.

LlamaFactory's ``get_train_args`` unpacks exactly five dataclasses and a field name must be unique
across them, so each stage's keys carry the stage's prefix and live in a mixin that
:class:`VideoFinetuningArguments` adds to the host's ``FinetuningArguments``. ``host/patches.py``
swaps that subclass into the host parser; nothing else changes for the stock stages.
"""

import typing
from dataclasses import dataclass, field
from typing import Literal, Optional

from llamafactory.hparams.finetuning_args import FinetuningArguments

from .registry import STAGES


HOST_STAGES: tuple[str, ...] = typing.get_args(typing.get_type_hints(FinetuningArguments)["stage"])
ALL_STAGES: tuple[str, ...] = HOST_STAGES + tuple(name for name in STAGES if name not in HOST_STAGES)
StageName = Literal[ALL_STAGES]  # type: ignore[valid-type]


@dataclass
class ActionClsArguments:
    r"""Keys of the ``action_cls`` stage (seed 001): an ``<ACTION>`` token whose last hidden state feeds a classifier."""

    num_action_classes: Optional[int] = field(
        default=None,
        metadata={
            "help": "Number of action classes (101 for UCF101, 174 for Something-Something v2). "
            "Inferred from the label-names file when omitted."
        },
    )
    action_decoder_type: Literal["linear", "mlp"] = field(
        default="linear",
        metadata={"help": "Classifier head on the <ACTION> hidden state: `linear` or `mlp` (hidden -> size -> GELU -> classes)."},
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
            "prompt longer than cutoff_len): `error` stops before training and lists them; `skip` drops and counts them."
        },
    )
    action_label_names: Optional[str] = field(
        default=None,
        metadata={
            "help": "JSON list (or one name per line text file) of class names, index = label. Defaults to the "
            "`label_names` file declared by the dataset in dataset_info.json."
        },
    )

    def _validate_action_cls(self) -> None:
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
            raise ValueError("`action_decoder_hidden_size` must be a positive integer (or null for the model's hidden size).")
        if not 0.0 <= self.action_label_smoothing < 1.0:
            raise ValueError(f"`action_label_smoothing` must be in [0, 1), got {self.action_label_smoothing}.")
        if not 0.0 <= self.action_decoder_dropout < 1.0:
            raise ValueError(f"`action_decoder_dropout` must be in [0, 1), got {self.action_decoder_dropout}.")
        if self.action_token_lr_scale < 0:
            raise ValueError(
                f"`action_token_lr_scale` must be >= 0 (0 freezes the <ACTION> embedding), got {self.action_token_lr_scale}."
            )
        if self.action_lm_loss_weight < 0:
            raise ValueError(f"`action_lm_loss_weight` must be >= 0, got {self.action_lm_loss_weight}.")
        if not self.action_token.strip():
            raise ValueError("`action_token` must be a non-empty string such as `<ACTION>`.")


@dataclass
class VideoFinetuningArguments(ActionClsArguments, FinetuningArguments):
    r"""LlamaFactory's ``FinetuningArguments`` plus the keys of every plugin stage."""

    stage: StageName = field(
        default="sft",
        metadata={"help": "Which stage will be performed in training. Video stages: " + ", ".join(STAGES) + "."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.stage == "action_cls":
            self._validate_action_cls()
