"""Tokenise ``action_cls`` samples and find every sample that cannot train, before training starts.

Output columns: ``input_ids``, ``attention_mask``, ``labels``, ``images``, ``videos``, ``audios``,
``action_label`` (``-1`` when invalid), ``sample_index``, ``dataset_name`` and ``problem`` (empty when
the sample is fine). Problems are collected, not raised, so one pass can report all of them: the
workflow then stops with the list, or drops and counts them (``action_invalid_samples: skip``).
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Optional

from llamafactory.data.processor.processor_utils import DatasetProcessor
from llamafactory.extras.constants import IGNORE_INDEX

from ..context import current_stage_args
from .common import append_row


def check_action_label(value: Any, num_classes: Optional[int]) -> tuple[int, str]:
    r"""``(label, problem)``: an int in ``[0, num_classes)`` or ``(-1, reason)``."""
    if isinstance(value, bool) or value is None:
        return -1, f"action_label is {value!r}, not an integer class index"
    if isinstance(value, float):
        if not value.is_integer():
            return -1, f"action_label {value!r} is not an integer class index"
        value = int(value)
    if not isinstance(value, int):
        return -1, f"action_label {value!r} ({type(value).__name__}) is not an integer class index"
    if value < 0 or (num_classes is not None and value >= num_classes):
        bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
        return -1, f"action_label {value} is outside {bound}"
    return value, ""


@dataclass
class ActionClsDatasetProcessor(DatasetProcessor):
    def __post_init__(self) -> None:
        args = current_stage_args()
        self.action_token: str = getattr(args, "action_token", "<ACTION>")
        self.num_classes: Optional[int] = getattr(args, "num_action_classes", None)
        self.include_answer: bool = getattr(args, "action_lm_loss_weight", 0.0) > 0
        self.action_token_id: int = self.tokenizer.convert_tokens_to_ids(self.action_token)
        video_token = getattr(self.template.mm_plugin, "video_token", None)
        self.video_token_id: Optional[int] = (
            self.tokenizer.convert_tokens_to_ids(video_token) if video_token is not None else None
        )

    def _encode(self, prompt, response, system, tools, images, videos, audios) -> tuple[list[int], list[int]]:
        r"""``(prompt_ids, answer_ids)`` with the video placeholders expanded (decodes the videos)."""
        answer = response if self.include_answer else [{"role": "assistant", "content": ""}]
        messages = self.template.mm_plugin.process_messages(prompt + answer, images, videos, audios, self.processor)
        prefix_ids, _ = self.template.mm_plugin.process_token_ids(
            [], [], images, videos, audios, self.tokenizer, self.processor
        )
        prompt_ids, answer_ids = self.template.encode_oneturn(self.tokenizer, messages, system, tools)
        return prefix_ids + prompt_ids, answer_ids

    def _problem(self, prompt_ids: list[int]) -> str:
        count = prompt_ids.count(self.action_token_id)
        if count == 0:
            return f"no {self.action_token} token in the prompt (put it at the end of the user message)"
        if count > 1:
            return f"{count} {self.action_token} tokens in the prompt, expected exactly one"
        action_pos = prompt_ids.index(self.action_token_id)
        if self.video_token_id is not None and self.video_token_id in prompt_ids[action_pos:]:
            return (
                f"{self.action_token} comes before the video; a causal model's {self.action_token} state cannot see "
                "it. Put <video> first and the action token at the end of the user message"
            )
        needed = len(prompt_ids) if self.include_answer else action_pos + 1
        if needed > self.data_args.cutoff_len:
            n_video = prompt_ids.count(self.video_token_id) if self.video_token_id is not None else 0
            return (
                f"the prompt is {needed} tokens ({n_video} of them video tokens) but cutoff_len is "
                f"{self.data_args.cutoff_len}: truncation would cut the video tokens or {self.action_token}. "
                f"Raise cutoff_len to at least {needed}, or lower video_max_pixels / video_maxlen"
            )
        return ""

    def _build(self, prompt_ids: list[int], answer_ids: list[int]) -> tuple[list[int], list[int]]:
        r"""Without the LM loss the input ends at ``<ACTION>`` (a causal model's ``<ACTION>`` state never sees
        what follows); with it, the answer follows the prompt, truncated to ``cutoff_len``."""
        if not self.include_answer:
            input_ids = prompt_ids[: prompt_ids.index(self.action_token_id) + 1]
            return input_ids, [IGNORE_INDEX] * len(input_ids)
        answer_ids = answer_ids[: max(0, self.data_args.cutoff_len - len(prompt_ids))]
        return prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids

    def preprocess_dataset(self, examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        model_inputs = defaultdict(list)
        for i in range(len(examples["_prompt"])):
            prompt, response = examples["_prompt"][i], examples["_response"][i]
            images = examples["_images"][i] or []
            videos = examples["_videos"][i] or []
            audios = examples["_audios"][i] or []
            label, problem = check_action_label(examples["_action_label"][i], self.num_classes)
            input_ids: list[int] = []
            labels: list[int] = []
            if len(prompt) % 2 != 1 or (self.include_answer and len(response) != 1):
                problem = (
                    problem
                    or "malformed conversation (need user turn(s) and, with action_lm_loss_weight > 0, one answer)"
                )
            else:
                try:
                    prompt_ids, answer_ids = self._encode(
                        prompt, response, examples["_system"][i], examples["_tools"][i], images, videos, audios
                    )
                except Exception as err:  # undecodable / missing media, placeholder mismatch
                    media = ", ".join(str(v) for v in videos + images) or "no media"
                    problem = problem or f"cannot process media ({media}): {type(err).__name__}: {err}"
                else:
                    problem = problem or self._problem(prompt_ids)
                    if not problem:
                        input_ids, labels = self._build(prompt_ids, answer_ids)

            append_row(
                model_inputs, examples, i, input_ids, labels, problem, action_label=label if not problem else -1
            )
        return model_inputs

    def print_data_example(self, example: dict[str, Any]) -> None:
        print("input_ids:\n{}".format(example["input_ids"]))
        print("inputs:\n{}".format(self.tokenizer.decode(example["input_ids"], skip_special_tokens=False)))
        print("action_label:\n{}".format(example["action_label"]))
        if example["problem"]:
            print("problem:\n{}".format(example["problem"]))
