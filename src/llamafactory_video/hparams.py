"""Argument fields of every plugin stage, merged into LlamaFactory's ``FinetuningArguments``.

LlamaFactory's ``get_train_args`` unpacks exactly five dataclasses and a field name must be unique
across them, so each stage's keys carry the stage's prefix and live in a mixin that
:class:`VideoFinetuningArguments` adds to the host's ``FinetuningArguments``. ``host/patches.py``
swaps that subclass into the host parser; nothing else changes for the stock stages.
"""

import sys
import typing
from dataclasses import dataclass, field
from typing import Literal, Optional

from llamafactory.hparams.finetuning_args import FinetuningArguments
from llamafactory.hparams.generating_args import GeneratingArguments

from .registry import STAGES


HOST_STAGES: tuple[str, ...] = typing.get_args(typing.get_type_hints(FinetuningArguments)["stage"])
ALL_STAGES: tuple[str, ...] = HOST_STAGES + tuple(name for name in STAGES if name not in HOST_STAGES)
StageName = Literal[ALL_STAGES]  # type: ignore[valid-type]


@dataclass
class ActionClsArguments:
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
class ScstArguments:
    r"""Keys of the ``scst`` stage (seed 000): self-critical sequence training of a video captioner."""

    scst_num_samples: int = field(default=5, metadata={"help": "Captions sampled per video at each step (K)."})
    scst_baseline: Literal["greedy", "beam", "mean"] = field(
        default="greedy",
        metadata={
            "help": "Reward baseline: `greedy` / `beam` (the caption decoded without gradient in eval mode) or "
            "`mean` (average reward of the other K-1 samples of the same video)."
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
        default=32, metadata={"help": "Target caption length in words for `scst_length_penalty` (seed: 32)."}
    )

    def validate(self) -> None:
        if self.scst_num_samples < 1:
            raise ValueError("`scst_num_samples` must be at least 1.")
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
        parse_reward_weights(self.scst_reward_weights)


STAGE_ARGUMENT_CLASSES: dict[str, type] = {"action_cls": ActionClsArguments, "scst": ScstArguments}
"""Stage -> its argument mixin; only mixins of registered stages join the host's arguments."""


def _validate_active_stage(args) -> None:
    mixin = STAGE_ARGUMENT_CLASSES.get(args.stage)
    if mixin is not None and args.stage in STAGES:
        mixin.validate(args)


def _build_finetuning_arguments() -> type:
    mixins = tuple(STAGE_ARGUMENT_CLASSES[name] for name in STAGES if name in STAGE_ARGUMENT_CLASSES)

    def __post_init__(self):
        FinetuningArguments.__post_init__(self)
        _validate_active_stage(self)

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
    return dataclass(type("VideoFinetuningArguments", (*mixins, FinetuningArguments), namespace))


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

    def to_dict(self, obey_generation_config: bool = False) -> dict:
        args = super().to_dict(obey_generation_config=obey_generation_config)
        for key in ("min_new_tokens", "no_repeat_ngram_size"):
            if args.get(key) is None:
                args.pop(key, None)
        return args


def install_into_parser(parser_module) -> None:
    r"""Swap our argument classes into the host parser's argument lists (host/patches.py calls this)."""
    swap = {FinetuningArguments: VideoFinetuningArguments, GeneratingArguments: VideoGeneratingArguments}
    for list_name in ("_TRAIN_ARGS", "_INFER_ARGS", "_EVAL_ARGS", "_TRAIN_MCA_ARGS"):
        arg_classes = getattr(parser_module, list_name, None)
        if isinstance(arg_classes, list):
            arg_classes[:] = [swap.get(cls, cls) for cls in arg_classes]


# Imported before LlamaFactory's parser finished loading? Its patch found this module half-initialised and
# left the swap to us.
if "llamafactory.hparams.parser" in sys.modules:
    from ._bootstrap import is_disabled

    if not is_disabled():
        install_into_parser(sys.modules["llamafactory.hparams.parser"])
