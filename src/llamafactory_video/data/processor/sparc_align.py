"""Rows of ``stage: sparc_align``: one output row per (video, caption) pair.

Input layouts (``dataset_info.json``, sharegpt or alpaca): a video with a list of captions (a ``captions`` column),
or one caption per row (the assistant answer / alpaca ``output``) with an optional ``video_id`` column; rows sharing
a ``video_id`` (default: the video path) are captions of one video.

Output columns: ``input_ids`` / ``attention_mask`` (the caption tokenised by the dual encoder's tokenizer),
``token_mask`` (1 = the local loss uses the token: not special, not padding and, with ``sparc_language_mask``, not a
stop word), ``labels`` (empty), ``images`` / ``videos`` / ``audios``, ``caption``, ``video_key``, ``sample_index``,
``dataset_name``, ``problem`` (empty when the sample can train).
"""

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from llamafactory.data.processor.processor_utils import DatasetProcessor

from ..context import current_stage_args
from ..sparc import load_stop_words, normalise_captions, visual_token_mask
from .common import append_row


def text_max_length(tokenizer: Any, stage_args: Any) -> int:
    limit = getattr(stage_args, "sparc_text_max_length", None)
    model_max = getattr(tokenizer, "model_max_length", None) or 77
    return int(limit or (model_max if model_max < 100_000 else 77))


def caption_features(tokenizer: Any, caption: str, max_length: int, stop_words: frozenset | None) -> dict:
    r"""``input_ids`` and ``token_mask`` of one caption (``stop_words=None``: only special tokens are masked)."""
    enc = tokenizer(caption, truncation=True, max_length=max_length, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    if stop_words is None:
        token_mask = [int(end > start) for start, end in offsets]
    else:
        token_mask = visual_token_mask(caption, offsets, stop_words)
    return {"input_ids": list(enc["input_ids"]), "token_mask": token_mask}


@dataclass
class SparcAlignDatasetProcessor(DatasetProcessor):
    def preprocess_dataset(self, examples: dict[str, list[Any]]) -> dict[str, list[Any]]:
        args = current_stage_args()
        stop_words = load_stop_words(args.sparc_stop_words) if args.sparc_language_mask else None
        max_length = text_max_length(self.tokenizer, args)
        model_inputs = defaultdict(list)
        num = len(examples["_prompt"])
        declared_captions = examples.get("_captions")
        video_ids = examples.get("_video_id") or [None] * num
        for i in range(num):
            videos = examples["_videos"][i] or []
            problem = ""
            if declared_captions is not None:
                captions, problem = normalise_captions(declared_captions[i])
            else:
                response = examples["_response"][i] or []
                text = response[0]["content"] if response else None
                captions, problem = normalise_captions(text)
                if problem:
                    problem = "no caption: this row has no assistant answer / `output`, and no `captions` column"
            if len(videos) != 1:
                problem = problem or f"`videos` holds {len(videos)} entries; each row needs exactly one video"
            elif isinstance(videos[0], str) and not os.path.isfile(videos[0]):
                problem = problem or f"video file not found: {videos[0]} (paths are relative to media_dir)"
            key = video_ids[i]
            video_key = str(key) if key not in (None, "") else (str(videos[0]) if videos else "")
            if problem:
                captions = [""]
            for caption in captions:
                feats = caption_features(self.tokenizer, caption, max_length, stop_words) if not problem else None
                input_ids = feats["input_ids"] if feats else []
                append_row(
                    model_inputs,
                    examples,
                    i,
                    input_ids,
                    [],
                    problem,
                    token_mask=feats["token_mask"] if feats else [],
                    caption=caption,
                    video_key=f"{examples['_dataset_name'][i]}::{video_key}",
                )
        return model_inputs

    def print_data_example(self, example: dict[str, Any]) -> None:
        print("caption:\n{}".format(example["caption"]))
        print("input_ids:\n{}".format(example["input_ids"]))
        tokens = self.tokenizer.convert_ids_to_tokens(example["input_ids"])
        print("tokens used by the local loss:\n{}".format([t for t, m in zip(tokens, example["token_mask"]) if m]))
        print("video:\n{}".format(example["videos"]))
        if example["problem"]:
            print("problem:\n{}".format(example["problem"]))
