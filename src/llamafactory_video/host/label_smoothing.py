r"""``label_smoothing_factor`` on vision-language models: shift the labels as for a causal LM.

``transformers.Trainer.compute_loss`` (5.6) applies its ``LabelSmoother`` with ``shift_labels=True`` only when the
model's class name is a value of ``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``. Decoder-only vision-language models
(``Qwen2_5_VLForConditionalGeneration``, ``LlavaForConditionalGeneration``, ...) are not listed there, so a stock
``sft`` run with ``label_smoothing_factor: 0.1`` on them scores the logits at position ``t`` against the label at
``t`` instead of ``t + 1``: the loss looks normal and the model learns to copy its input (seed 000 asks for 0.1).

:func:`patch_label_smoothing` gives the ``transformers.trainer`` module (whose ``compute_loss`` reads that name
from its globals, in the label-smoother branch only) a copy of the mapping with the image-text-to-text classes
added, minus the encoder-decoder ones (:data:`ENCODER_DECODER_TYPES`, checked against their configs by
``tests/unit/test_host_contract.py``). Without ``label_smoothing_factor`` nothing reads it.
"""

from collections import OrderedDict
from types import ModuleType


MAPPING_NAME = "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"
# image-text-to-text model types that are encoder-decoder (their decoder labels are not shifted by the smoother),
# or may be (BLIP-2 / InstructBLIP with a T5 language model): left as the host treats them
ENCODER_DECODER_TYPES = frozenset(
    {"florence2", "pix2struct", "t5gemma2", "udop", "vision-encoder-decoder", "blip-2", "instructblip",
     "instructblipvideo"}
)
PATCHED = "__llamafactory_video_vlm_label_shift__"


def decoder_only_vlm_names() -> dict[str, str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return {t: n for t, n in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.items() if t not in ENCODER_DECODER_TYPES}


def patch_label_smoothing(trainer_module: ModuleType) -> None:
    original = getattr(trainer_module, MAPPING_NAME)
    if getattr(original, PATCHED, False):
        return
    names = _Names(original)
    present = set(original.values())
    for model_type, name in decoder_only_vlm_names().items():
        if name not in present:
            names[f"{model_type} (vision-language, label smoothing)"] = name
    setattr(trainer_module, MAPPING_NAME, names)


class _Names(OrderedDict):
    __llamafactory_video_vlm_label_shift__ = True
