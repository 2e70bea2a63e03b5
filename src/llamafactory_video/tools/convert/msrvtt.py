"""MSR-VTT (the official ``videodatainfo`` JSON) to caption SFT data and caption RL / evaluation data.

Input: ``{"videos": [{"video_id": "video0", "category": 9, "split": "train" | "validate" | "test", "url",
"start time", "end time", "id"}], "sentences": [{"caption", "video_id", "sen_id"}]}``; videos are
``<video_root>/<video_id>.mp4``.

Outputs per split, in ``output_dir``:

* ``<prefix>_<split>_sft.json`` — one row per caption (works with the stock ``sft`` stage);
* ``<prefix>_<split>_caption.json`` — one row per video: the first caption (lowest ``sen_id``) as the answer,
  ``references`` = all its captions, ``category`` = the category name (``null`` when unknown);
* their ``dataset_info.json`` entries (the caption data declares ``references`` and ``category``).
"""

from __future__ import annotations

import os
import re
from typing import Any

from .common import (
    ConversionError,
    ConversionSummary,
    VideoLocator,
    entry_error,
    load_json_list,
    merge_dataset_info,
    sample,
    sharegpt_entry,
    write_json,
)


USER_PROMPT = "<video>Describe this video in one sentence."

CATEGORIES: tuple[str, ...] = (
    "music",
    "people",
    "gaming",
    "sports/actions",
    "news/events/politics",
    "education",
    "tv shows",
    "movie/comedy",
    "animation",
    "vehicles/autos",
    "howto",
    "travel",
    "science/technology",
    "animals/pets",
    "kids/family",
    "documentary",
    "food/drink",
    "cooking",
    "beauty/fashion",
    "advertisement",
)
"""MSR-VTT's 20 categories, by their index in ``videodatainfo``."""

SPLIT_ORDER = ("train", "validate", "test")
_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def _category_name(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return None
    try:
        index = int(value)
    except (TypeError, ValueError):
        return None
    if index != value and str(index) != str(value).strip():
        return None
    return CATEGORIES[index] if 0 <= index < len(CATEGORIES) else None


def convert_msrvtt(
    annotations: str,
    video_root: str,
    output_dir: str,
    prefix: str = "msrvtt",
    video_ext: str = "mp4",
    skip_missing: bool = False,
    register: bool = True,
) -> ConversionSummary:
    r"""Convert an MSR-VTT ``videodatainfo`` JSON; returns the summary (files written as a side effect).

    Args:
        annotations: ``train_val_videodatainfo.json`` / ``test_videodatainfo.json`` (any file of that format).
        video_root: Folder of ``<video_id>.<video_ext>`` videos.
        output_dir: LlamaFactory ``dataset_dir`` to write into.
        prefix: Dataset name / file prefix.
        video_ext: Video extension.
        skip_missing: Drop the rows of videos that do not exist (else keep them and count them).
        register: Merge the entries into ``<output_dir>/dataset_info.json``.
    """
    if not os.path.isdir(video_root):
        raise ConversionError(video_root, "video folder not found")
    output_dir = os.path.abspath(output_dir)
    summary = ConversionSummary(f"MSR-VTT ({os.path.basename(annotations)})", output_dir, skip_missing=skip_missing)
    videos, video_lines, _ = load_json_list(annotations, key="videos")
    sentences, sentence_lines, _ = load_json_list(annotations, key="sentences")

    info: dict[str, dict[str, Any]] = {}  # video_id -> {"split", "category", "index"}
    for i, video in enumerate(videos):
        if not isinstance(video, dict):
            raise entry_error(
                annotations, video_lines, i, f"expected an object, got {type(video).__name__}", name="videos"
            )
        video_id = video.get("video_id")
        if not isinstance(video_id, str) or not video_id.strip():
            raise entry_error(annotations, video_lines, i, "missing video id", key="video_id", name="videos")
        if video_id in info:
            first = info[video_id]["index"]
            raise entry_error(
                annotations,
                video_lines,
                i,
                f"video {video_id!r} repeats videos[{first}]",
                key="video_id",
                name="videos",
            )
        split = video.get("split")
        if not isinstance(split, str) or not _SAFE.match(split):
            raise entry_error(
                annotations,
                video_lines,
                i,
                f"split {split!r} is not a name such as 'train'",
                key="split",
                name="videos",
            )
        info[video_id] = {"split": split, "category": _category_name(video.get("category")), "index": i}

    captions: dict[str, list[tuple[Any, int, str]]] = {}
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, dict):
            raise entry_error(
                annotations, sentence_lines, i, f"expected an object, got {type(sentence).__name__}", name="sentences"
            )
        video_id = sentence.get("video_id")
        if video_id not in info:
            raise entry_error(
                annotations,
                sentence_lines,
                i,
                f"video {video_id!r} is not in the 'videos' list",
                key="video_id",
                name="sentences",
            )
        caption = sentence.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            raise entry_error(annotations, sentence_lines, i, "missing caption", key="caption", name="sentences")
        sen_id = sentence.get("sen_id")
        order = sen_id if isinstance(sen_id, int) and not isinstance(sen_id, bool) else float("inf")
        captions.setdefault(video_id, []).append((order, i, " ".join(caption.split())))

    locator = VideoLocator(video_root, output_dir)
    ext = video_ext.lstrip(".")
    sft: dict[str, list[dict[str, Any]]] = {}
    rl: dict[str, list[dict[str, Any]]] = {}
    without_captions = 0
    categories: set[str] = set()
    for video_id, meta in info.items():
        refs = [text for _, _, text in sorted(captions.get(video_id, []))]
        split = meta["split"]
        sft.setdefault(split, [])
        rl.setdefault(split, [])
        if not refs:
            without_captions += 1
            continue
        path, exists = locator.find(f"{video_id}.{ext}")
        if not exists:
            summary.add_missing(path)
            if skip_missing:
                summary.dropped_samples += len(refs) + 1
                continue
        video = [locator.output_path(path)]
        sft[split].extend(sample(USER_PROMPT, ref, list(video)) for ref in refs)
        rl[split].append(sample(USER_PROMPT, refs[0], video, references=refs, category=meta["category"]))
        if meta["category"] is not None:
            categories.add(meta["category"])

    entries: dict[str, dict[str, Any]] = {}
    order = [s for s in SPLIT_ORDER if s in sft] + sorted(s for s in sft if s not in SPLIT_ORDER)
    for split in order:
        for kind, rows, columns in (
            ("sft", sft[split], None),
            ("caption", rl[split], {"references": "references", "category": "category"}),
        ):
            file_name = f"{prefix}_{split}_{kind}.json"
            write_json(os.path.join(output_dir, file_name), rows)
            summary.outputs[file_name] = len(rows)
            entries[f"{prefix}_{split}_{kind}"] = sharegpt_entry(file_name, columns)
    summary.num_classes = len(categories)
    summary.notes.append(f"classes = MSR-VTT categories present in the data ({len(categories)} of {len(CATEGORIES)})")
    if without_captions:
        summary.notes.append(f"{without_captions} videos have no caption and were left out")
    if register:
        summary.dataset_info = merge_dataset_info(output_dir, entries)
        summary.registered = list(entries)
    return summary
