"""Collators of the plugin stages: the host's multimodal collator plus each stage's extra tensors."""

from dataclasses import dataclass
from typing import Any

import torch
from llamafactory.data.collator import MultiModalDataCollatorForSeq2Seq


META_COLUMNS = ("sample_index", "dataset_name", "problem")


@dataclass
class ActionClsDataCollator(MultiModalDataCollatorForSeq2Seq):
    r"""Adds ``action_labels`` ``(B,)`` to the host's batch (video pixels, grids, M-RoPE positions)."""

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        action_labels = []
        for feature in features:
            action_labels.append(int(feature.pop("action_label")))
            for key in META_COLUMNS:
                feature.pop(key, None)
        batch = super().__call__(features)
        batch["action_labels"] = torch.tensor(action_labels, dtype=torch.long)
        return batch


@dataclass
class ScstDataCollator(MultiModalDataCollatorForSeq2Seq):
    r"""The host's batch (left-padded for generation) plus ``references`` (list of lists of str), ``categories``
    and ``sample_keys`` (``"<dataset>#<index>"``, the reward scorer's cache keys). Strings stay Python lists: the
    Trainer moves only tensors to the device."""

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        references, categories, keys, answers = [], [], [], []
        for feature in features:
            references.append(list(feature.pop("references")))
            categories.append(feature.pop("category", ""))
            answers.append(feature.pop("answer", "") or "")
            keys.append(sample_key(feature.pop("dataset_name"), feature.pop("sample_index")))
            feature.pop("problem", None)
        batch = super().__call__(features)
        batch["references"] = references
        batch["categories"] = categories
        batch["sample_keys"] = keys
        if any(answers):
            batch["answer"] = answers  # QA data: the right answer (option letter) for the rewards
        return batch


def sample_key(dataset_name: str, sample_index: int) -> str:
    return f"{dataset_name}#{int(sample_index)}"


@dataclass
class SparcAlignDataCollator:
    r"""Batches ``sparc_align`` rows: pads captions, decodes each DISTINCT video of the batch once (host frame
    sampling, then the dual encoder's image processor) and maps captions to their video.

    Output: ``input_ids`` / ``attention_mask`` / ``token_mask`` ``(B, L)``, ``pixel_values`` ``(N, T, C, H, W)``
    (videos with fewer frames padded with zeros), ``frame_mask`` ``(N, T)``, ``video_index`` ``(B,)``.
    """

    tokenizer: Any
    image_processor: Any
    video_fps: float = 2.0
    video_maxlen: int = 8
    max_pixels: int = 256 * 256
    min_pixels: int = 16 * 16
    pad_to_length: int = 0
    """pad captions to this many tokens (SigLIP pools the last position and expects max-length padding); 0 = longest"""

    def video_tensor(self, path: str) -> torch.Tensor:
        from .frames import load_video_frames

        frames = load_video_frames(path, self.video_fps, self.video_maxlen, self.max_pixels, self.min_pixels)
        return self.image_processor(images=frames, return_tensors="pt")["pixel_values"]

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        keys: dict[str, int] = {}
        videos: list[torch.Tensor] = []
        video_index = []
        for feature in features:
            key = feature["video_key"]
            if key not in keys:
                keys[key] = len(videos)
                videos.append(self.video_tensor(feature["videos"][0]))
            video_index.append(keys[key])
        length = max(self.pad_to_length, max(len(f["input_ids"]) for f in features))
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        batch = len(features)
        input_ids = torch.full((batch, length), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, length), dtype=torch.long)
        token_mask = torch.zeros((batch, length), dtype=torch.bool)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[i, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            attention_mask[i, :n] = 1
            token_mask[i, :n] = torch.tensor(f["token_mask"], dtype=torch.bool)
        frames = max(v.size(0) for v in videos)
        pixel_values = torch.zeros((len(videos), frames, *videos[0].shape[1:]), dtype=videos[0].dtype)
        frame_mask = torch.zeros((len(videos), frames), dtype=torch.bool)
        for j, v in enumerate(videos):
            pixel_values[j, : v.size(0)] = v
            frame_mask[j, : v.size(0)] = True
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_mask": token_mask,
            "pixel_values": pixel_values,
            "frame_mask": frame_mask,
            "video_index": torch.tensor(video_index, dtype=torch.long),
        }
