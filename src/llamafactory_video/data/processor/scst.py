"""Tokenise ``scst`` samples: the prompt (video + question, ending with the assistant header) for generation,
plus ALL reference captions of the video (never one drawn at random: the seed's bug) and its category.

Output columns: ``input_ids``, ``attention_mask``, ``labels`` (the first reference's tokens, used by nothing but
the host's data printer), ``images``, ``videos``, ``audios``, ``references`` (list of str), ``category`` (str,
empty when absent), ``answer`` (str, the QA rewards' right answer, empty when absent), ``sample_index``,
``dataset_name``, ``problem`` (empty when the sample is fine).
"""

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from llamafactory.data.processor.processor_utils import DatasetProcessor
from llamafactory.extras.constants import IGNORE_INDEX

from .common import append_row


def check_references(value: Any) -> tuple[list[str], str]:
    r"""``(references, problem)``: a non-empty list of non-empty strings, or ``([], reason)``."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return [], f"references is {type(value).__name__}, not a list of captions"
    refs = [ref.strip() for ref in value if isinstance(ref, str) and ref.strip()]
    if not refs:
        return [], "empty reference list (SCST rewards need at least one reference caption)"
    return refs, ""


@dataclass
class ScstDatasetProcessor(DatasetProcessor):
    def preprocess_dataset(self, examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        model_inputs = defaultdict(list)
        categories = examples.get("_category") or [None] * len(examples["_prompt"])
        answers = examples.get("_answer") or [None] * len(examples["_prompt"])  # QA: the right answer / letter
        for i in range(len(examples["_prompt"])):
            prompt = examples["_prompt"][i]
            images = examples["_images"][i] or []
            videos = examples["_videos"][i] or []
            audios = examples["_audios"][i] or []
            refs, problem = check_references(examples["_references"][i])
            input_ids: list[int] = []
            if len(prompt) % 2 != 1:
                problem = problem or "malformed conversation (the prompt must end with a user turn)"
            else:
                try:
                    messages = self.template.mm_plugin.process_messages(
                        prompt + [{"role": "assistant", "content": ""}], images, videos, audios, self.processor
                    )
                    prefix_ids, _ = self.template.mm_plugin.process_token_ids(
                        [], [], images, videos, audios, self.tokenizer, self.processor
                    )
                    prompt_ids, _ = self.template.encode_oneturn(
                        self.tokenizer, messages, examples["_system"][i], examples["_tools"][i]
                    )
                    input_ids = prefix_ids + prompt_ids
                except Exception as err:  # missing / undecodable media, placeholder mismatch
                    media = ", ".join(str(v) for v in videos + images) or "no media"
                    problem = problem or f"cannot process media ({media}): {type(err).__name__}: {err}"
            if not problem and len(input_ids) > self.data_args.cutoff_len:
                problem = (
                    f"the prompt is {len(input_ids)} tokens but cutoff_len is {self.data_args.cutoff_len}: truncation "
                    f"would cut the video tokens. Raise cutoff_len to at least {len(input_ids)}, or lower "
                    "video_max_pixels / video_maxlen"
                )
            if problem:
                input_ids = []
            category = categories[i]
            append_row(
                model_inputs,
                examples,
                i,
                input_ids,
                [IGNORE_INDEX] * len(input_ids),
                problem,
                references=refs,
                category="" if category is None else str(category),
                answer="" if answers[i] is None else str(answers[i]),
            )
        return model_inputs

    def print_data_example(self, example: dict[str, Any]) -> None:
        print("input_ids:\n{}".format(example["input_ids"]))
        print("inputs:\n{}".format(self.tokenizer.decode(example["input_ids"], skip_special_tokens=False)))
        print("references:\n{}".format(example["references"]))
        if example["problem"]:
            print("problem:\n{}".format(example["problem"]))
