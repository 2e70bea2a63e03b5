"""``llamafactory-video check-data``: a health check of a registered video dataset, before training.

For a dataset in ``dataset_info.json`` (read with LlamaFactory's own parser and converter, so columns, tags
and ``media_dir`` resolution are exactly the host's) it reports:

* videos that are missing, empty (0 bytes), cannot be opened or decoded, or decode fewer frames than their
  header declares (the probe every stage runs before training, ``data/video_probe.py``: decoded in parallel
  threads, cached per file, with a progress bar);
* duration / fps / width / height / frame-count statistics of the good videos;
* declared columns absent from the data, malformed conversations, ``<video>`` placeholders that do not match
  the number of videos, missing images / audios;
* classification data (``action_label``): the label histogram with the class names, invalid labels, and the
  ``<ACTION>`` token count / placement; caption data (``references``): references per sample;
* given ``--model``, ``--template`` and ``--cutoff-len``: the token count of every sample (video tokens
  expanded by the template's multimodal plugin, as in training) against ``cutoff_len``.

The report is printed and written as JSON; ``--write-clean`` writes the data without the bad samples. Exit
code 0 when clean, 1 when a problem is found, 2 on a usage error, so it can gate a training script.

Module-level imports are standard library only (and PyAV, lazily): ``llamafactory-video --help`` imports this
module. LlamaFactory is imported when the check runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Optional

from ..data.video_probe import probe_video, probe_videos  # noqa: F401 - standard library + PyAV (lazily)

HELP = "check a registered video dataset: missing / undecodable videos, columns, labels, tokens vs cutoff_len"

MAX_LISTED = 20
MAX_HISTOGRAM_ROWS = 30

# kinds of per-sample problems (the ``kind`` field of each entry in ``bad_samples[*].problems``)
KIND_TEXT: dict[str, str] = {
    "not_an_object": "entry is not a JSON object",
    "missing_column": "declared column missing",
    "malformed": "malformed conversation",
    "placeholders": "placeholder / media count mismatch",
    "missing_video": "missing video",
    "empty_video": "empty video file",
    "undecodable_video": "undecodable video",
    "missing_media": "missing image / audio / frame",
    "bad_label": "invalid action_label",
    "action_token": "action token missing / repeated / misplaced",
    "bad_references": "invalid references",
    "over_cutoff": "over cutoff_len",
    "processing_error": "model processor failed",
}


OPTIONAL_COLUMNS = frozenset(
    {"system", "tools", "images", "videos", "audios", "query", "history", "kto_tag", "category"}
)
"""Column keys a sample may lack (the host reads ``None``); lacking any other declared column makes a sample bad."""


class UsageError(Exception):
    r"""Bad arguments or an unusable dataset registration (exit code 2)."""


class DataReadError(Exception):
    r"""A data file that cannot be read as JSON / JSON lines (exit code 1); the message names file:line."""


# ----------------------------------------------------------------------------------------------------------------
# Video probing: the probe every stage runs before training (data/video_probe.py), so check-data and training agree
# ----------------------------------------------------------------------------------------------------------------

# probe_video / probe_videos are imported above from data/video_probe.py


# ----------------------------------------------------------------------------------------------------------------
# Data reading
# ----------------------------------------------------------------------------------------------------------------


def _read_jsonl(path: str, text: str) -> list[Any]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataReadError(f"{path}:{number}: invalid JSON line: {err.msg} (column {err.colno})") from None
    return records


def read_records(path: str) -> list[Any]:
    r"""The samples of a ``.json`` (a list, or JSON lines as the host's loader accepts) or ``.jsonl`` file."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    if path.endswith(".jsonl"):
        return _read_jsonl(path, text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # JSON lines in a .json file
            return _read_jsonl(path, text)
        raise DataReadError(f"{path}:{err.lineno}: invalid JSON: {err.msg} (column {err.colno})") from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise DataReadError(f"{path}: expected a JSON list of samples, got {type(data).__name__}")
    return data


def write_records(path: str, records: list[Any]) -> str:
    r"""Write samples as JSON lines (``.jsonl``) or an indented JSON list (any other name)."""
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        if path.endswith(".jsonl"):
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            json.dump(records, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return path


# ----------------------------------------------------------------------------------------------------------------
# The check
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class CheckOptions:
    r"""Everything :func:`check_dataset` needs (the CLI flags)."""

    dataset: str
    dataset_dir: str
    media_dir: Optional[str] = None
    model: Optional[str] = None
    template: Optional[str] = None
    cutoff_len: int = 2048
    video_maxlen: Optional[int] = None
    video_fps: Optional[float] = None
    video_max_pixels: Optional[int] = None
    video_token_pool_stride: int = 1
    video_token_pool_mode: str = "average"
    trust_remote_code: bool = False
    action_token: str = "<ACTION>"
    count_answer: bool = False
    workers: int = 1
    max_frames: int = 0
    progress: bool = True


@dataclass
class _Sample:
    index: int
    file: str
    file_index: int
    record: Any
    converted: Optional[dict[str, Any]] = None
    videos: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)

    def add(self, kind: str, detail: str) -> None:
        self.problems.append({"kind": kind, "detail": detail})


def _stats(values: Iterable[float]) -> Optional[dict[str, float]]:
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    return {
        "min": round(min(values), 3),
        "median": round(float(statistics.median(values)), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def _dataset_files(dataset_dir: str, file_name: str) -> list[str]:
    path = os.path.join(dataset_dir, file_name)
    if os.path.isdir(path):  # the host loads every file of the folder, in os.listdir order
        files = [os.path.join(path, name) for name in os.listdir(path)]
    elif os.path.isfile(path):
        files = [path]
    else:
        raise UsageError(f"Data file {path} not found.")
    for file in files:
        if os.path.splitext(file)[1] not in (".json", ".jsonl"):
            raise UsageError(f"check-data reads .json / .jsonl data files; {file} is not one.")
    return files


def _load_registration(options: CheckOptions) -> tuple[Any, dict[str, Any]]:
    r"""``(DatasetAttr, raw dataset_info entry)`` through the host parser (with this plugin's patch)."""
    from llamafactory.data.parser import get_dataset_list

    info_path = os.path.join(options.dataset_dir, "dataset_info.json")
    if not os.path.isfile(info_path):
        raise UsageError(f"{info_path} not found; pass the folder of dataset_info.json as --dataset-dir.")
    try:
        attr = get_dataset_list([options.dataset], options.dataset_dir)[0]
    except ValueError as err:
        raise UsageError(f"{err} ({info_path})") from None
    if attr.load_from != "file":
        raise UsageError(f"Dataset `{options.dataset}` is loaded from {attr.load_from}; check-data reads local files.")
    with open(info_path, encoding="utf-8") as f:
        raw = json.load(f)[options.dataset]
    return attr, raw


def _message_texts(converted: dict[str, Any]) -> list[str]:
    return [m.get("content") or "" for m in (converted["_prompt"] or []) + (converted["_response"] or [])]


class _Quiet:
    r"""Silence the host converter's per-sample warnings (every problem is reported by check-data instead)."""

    def __enter__(self) -> None:
        import logging

        self._logger = logging.getLogger("llamafactory.data.converter")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: Any) -> None:
        self._logger.setLevel(self._level)


def _convert(samples: list[_Sample], attr: Any, raw_columns: dict[str, str], options: CheckOptions) -> dict:
    r"""Run the host converter on every sample; record column / conversation / placeholder problems."""
    from llamafactory.data.converter import get_dataset_converter
    from llamafactory.extras.constants import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER
    from llamafactory.hparams import DataArguments

    data_args = DataArguments(dataset_dir=options.dataset_dir, media_dir=options.media_dir)
    converter = get_dataset_converter(attr.formatting, attr, data_args)
    present: Counter = Counter()
    objects = [s for s in samples if isinstance(s.record, dict)]
    for s in objects:
        present.update(s.record.keys())
    all_keys = set(present)
    declared_missing = {
        key: {"column": column, "samples": len(objects) - present[column], "optional": key in OPTIONAL_COLUMNS}
        for key, column in raw_columns.items()
        if present[column] < len(objects)
    }
    with _Quiet():
        for s in samples:
            if not isinstance(s.record, dict):
                s.add("not_an_object", f"entry is a {type(s.record).__name__}, not an object")
                continue
            for key, column in raw_columns.items():
                if column not in s.record and column in all_keys and key not in OPTIONAL_COLUMNS:
                    s.add("missing_column", f"no `{column}` (the `{key}` column declared in dataset_info.json)")
            example = {key: s.record.get(key) for key in all_keys}  # the host's loader fills absent keys with None
            try:
                converted = converter(example)
            except Exception as err:  # noqa: BLE001
                s.add("malformed", f"the host converter fails: {type(err).__name__}: {err}")
                continue
            if not converted["_prompt"]:
                s.add("malformed", "roles or number of turns do not fit the dataset's tags (user/assistant pairs)")
                continue
            s.converted = converted
            texts = _message_texts(converted)
            for placeholder, media_key, name in (
                (VIDEO_PLACEHOLDER, "_videos", "videos"),
                (IMAGE_PLACEHOLDER, "_images", "images"),
            ):
                count = sum(text.count(placeholder) for text in texts)
                media = converted[media_key] or []
                if count != len(media):
                    s.add("placeholders", f"{count} {placeholder} placeholder(s) but {len(media)} {name}")
            for v in converted["_videos"] or []:
                if isinstance(v, list):  # a video given as frame images
                    for frame in v:
                        if isinstance(frame, str) and not os.path.isfile(frame):
                            s.add("missing_media", f"missing video frame {_shown(frame, options)}")
                elif isinstance(v, str):
                    s.videos.append(v)
            for key, name in (("_images", "image"), ("_audios", "audio")):
                for m in converted[key] or []:
                    if isinstance(m, str) and not os.path.isfile(m):
                        s.add("missing_media", f"missing {name} {_shown(m, options)}")
    return declared_missing


def _shown(path: str, options: CheckOptions) -> str:
    r"""A missing relative path is shown joined with media_dir (where the host looked first)."""
    if not os.path.isabs(path) and not os.path.exists(path):
        return os.path.join(options.media_dir or options.dataset_dir, path)
    return path


def _check_labels(
    samples: list[_Sample], column: str, names_path: Optional[str], options: CheckOptions, problems: list[str]
) -> dict[str, Any]:
    from ..data.labels import read_label_names
    from ..data.processor.action_cls import check_action_label

    names: Optional[list[str]] = None
    names_file = None
    if names_path:
        names_file = names_path if os.path.isabs(names_path) else os.path.join(options.dataset_dir, names_path)
        try:
            names = read_label_names(names_file)
        except (OSError, ValueError) as err:
            problems.append(f"label names: {err}")
    counts: Counter = Counter()
    invalid = 0
    token = options.action_token
    for s in samples:
        if not isinstance(s.record, dict) or column not in s.record:
            continue
        label, problem = check_action_label(s.record.get(column), len(names) if names is not None else None)
        if problem:
            invalid += 1
            s.add("bad_label", problem)
        else:
            counts[label] += 1
        if s.converted is not None:
            prompt_texts = [m.get("content") or "" for m in s.converted["_prompt"]]
            found = sum(text.count(token) for text in prompt_texts)
            if found != 1:
                s.add("action_token", f"{found} {token} tokens in the prompt, expected exactly one")
            else:
                joined = "\n".join(prompt_texts)
                from llamafactory.extras.constants import VIDEO_PLACEHOLDER

                if VIDEO_PLACEHOLDER in joined[joined.index(token) :]:
                    s.add("action_token", f"{token} comes before a {VIDEO_PLACEHOLDER}; put it at the end")
    num_classes = len(names) if names is not None else (max(counts) + 1 if counts else 0)
    histogram = [
        {"label": i, "name": names[i] if names is not None else None, "count": counts.get(i, 0)}
        for i in range(num_classes)
    ]
    return {
        "column": column,
        "names_file": names_file,
        "num_classes": num_classes,
        "histogram": histogram,
        "invalid": invalid,
        "classes_without_samples": [row["name"] or row["label"] for row in histogram if row["count"] == 0],
    }


def _check_references(samples: list[_Sample], column: str) -> dict[str, Any]:
    from ..data.processor.scst import check_references  # the same rule the scst stage applies

    per_sample: list[int] = []
    invalid = 0
    for s in samples:
        if not isinstance(s.record, dict) or column not in s.record:
            continue
        refs, problem = check_references(s.record.get(column))
        if problem:
            invalid += 1
            s.add("bad_references", f"`{column}`: {problem}")
            continue
        per_sample.append(len(refs))
    return {"column": column, "per_sample": _stats(per_sample), "total": sum(per_sample), "invalid": invalid}


def _count_tokens(samples: list[_Sample], options: CheckOptions, uses_action_token: bool) -> dict[str, Any]:
    r"""Token count of every still-good sample, the way the stages encode it (video tokens expanded)."""
    from llamafactory.data import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments, ModelArguments
    from llamafactory.model import load_tokenizer
    from tqdm import tqdm

    model_kwargs: dict[str, Any] = {
        "model_name_or_path": options.model,
        "trust_remote_code": options.trust_remote_code,
    }
    for key in ("video_maxlen", "video_fps", "video_max_pixels"):
        if getattr(options, key) is not None:
            model_kwargs[key] = getattr(options, key)
    if uses_action_token:
        model_kwargs["add_special_tokens"] = options.action_token
    model_args = ModelArguments(**model_kwargs)
    tokenizer_module = load_tokenizer(model_args)
    tokenizer, processor = tokenizer_module["tokenizer"], tokenizer_module["processor"]
    pooling = None
    if options.video_token_pool_stride > 1:  # what `video_token_pool_stride` would save, sample by sample
        from ..model.video_pooling import VideoPooling, attach_to_processor

        pooling = VideoPooling.uniform(options.video_token_pool_stride, options.video_token_pool_mode)
        attach_to_processor(processor, pooling)
    data_args = DataArguments(
        template=options.template,
        dataset_dir=options.dataset_dir,
        media_dir=options.media_dir,
        cutoff_len=options.cutoff_len,
    )
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    plugin = template.mm_plugin
    video_token = getattr(plugin, "video_token", None)
    video_id = tokenizer.convert_tokens_to_ids(video_token) if video_token else None
    action_id = tokenizer.convert_tokens_to_ids(options.action_token) if uses_action_token else None
    through_action = uses_action_token and not options.count_answer

    todo = [s for s in samples if not s.problems and s.converted is not None]
    needed_all, video_all, unpooled_all, over = [], [], [], []
    errors = 0
    for s in tqdm(
        todo, desc="Counting tokens", unit="sample", disable=not options.progress or not todo, file=sys.stderr
    ):
        c = s.converted
        images, videos, audios = c["_images"] or [], c["_videos"] or [], c["_audios"] or []
        response = c["_response"] or [{"role": "assistant", "content": ""}]
        try:
            if pooling is not None and videos:
                from ..model.video_pooling import attach_to_processor

                attach_to_processor(processor, None)
                stock = plugin.process_messages(c["_prompt"] + response, images, videos, audios, processor)
                attach_to_processor(processor, pooling)
                unpooled_all.append(sum(m["content"].count(video_token) for m in stock))
            messages = plugin.process_messages(c["_prompt"] + response, images, videos, audios, processor)
            prefix, _ = plugin.process_token_ids([], [], images, videos, audios, tokenizer, processor)
            prompt_ids, answer_ids = template.encode_oneturn(tokenizer, messages, c["_system"], c["_tools"])
        except Exception as err:  # noqa: BLE001
            errors += 1
            s.add("processing_error", f"{type(err).__name__}: {err}")
            continue
        prompt_ids = prefix + prompt_ids
        if through_action and action_id in prompt_ids:
            needed = prompt_ids.index(action_id) + 1
        else:
            needed = len(prompt_ids) + len(answer_ids)
        n_video = prompt_ids.count(video_id) if video_id is not None else 0
        needed_all.append(needed)
        video_all.append(n_video)
        if needed > options.cutoff_len:
            over.append({"index": s.index, "tokens": needed, "video_tokens": n_video})
            s.add("over_cutoff", f"{needed} tokens ({n_video} video tokens) > cutoff_len {options.cutoff_len}")
    return {
        "model": options.model,
        "template": options.template,
        "cutoff_len": options.cutoff_len,
        "video_maxlen": model_args.video_maxlen,
        "video_fps": model_args.video_fps,
        "video_max_pixels": model_args.video_max_pixels,
        "counted": f"prompt through {options.action_token}" if through_action else "prompt + answer",
        "checked": len(needed_all),
        "tokens": _stats(needed_all),
        "video_tokens": _stats(video_all),
        "video_token_pooling": (
            {
                "stride": pooling.slow_stride,
                "mode": pooling.mode,
                "video_tokens_unpooled": _stats(unpooled_all),
                "saving": round(sum(unpooled_all) / max(sum(video_all), 1), 2),
            }
            if pooling is not None
            else None
        ),
        "over_cutoff": over,
        "errors": errors,
        "suggested_cutoff_len": max(needed_all) if needed_all else None,
    }


def check_dataset(options: CheckOptions) -> tuple[dict[str, Any], list[Any]]:
    r"""Run every check; returns ``(report, records)`` (records: the raw samples, in the host's order)."""
    from .._logging import get_logger

    logger = get_logger(__name__)
    options.dataset_dir = os.path.abspath(options.dataset_dir)
    options.media_dir = os.path.abspath(options.media_dir or options.dataset_dir)
    if options.model and not options.template:
        raise UsageError("--model needs --template (the LlamaFactory template the model trains with).")
    attr, raw = _load_registration(options)
    raw_columns: dict[str, str] = dict(raw.get("columns") or {})
    files = _dataset_files(options.dataset_dir, attr.dataset_name)

    samples: list[_Sample] = []
    records: list[Any] = []
    for file in files:
        for j, record in enumerate(read_records(file)):
            samples.append(_Sample(len(samples), file, j, record))
            records.append(record)

    problems: list[str] = []
    if not samples:
        problems.append("the dataset has no samples")
    declared_missing = _convert(samples, attr, raw_columns, options)
    num_objects = sum(isinstance(s.record, dict) for s in samples)
    absent_everywhere = {
        row["column"] for row in declared_missing.values() if num_objects and row["samples"] == num_objects
    }
    for key, row in declared_missing.items():
        if row["column"] in absent_everywhere:
            problems.append(f'declared column `{key}` ("{row["column"]}") is absent from every sample')

    # videos: each unique path decoded once
    unique = sorted({v for s in samples for v in s.videos})
    logger.info(
        f"check-data `{options.dataset}`: {len(samples)} samples, decoding {len(unique)} unique videos with "
        f"{min(options.workers, max(1, len(unique)))} worker(s)."
    )
    probes = probe_videos(unique, workers=options.workers, max_frames=options.max_frames, progress=options.progress)
    bad_video_samples: Counter = Counter()
    for s in samples:
        for v in s.videos:
            info = probes[v]
            if not info["ok"]:
                bad_video_samples[v] += 1
                shown = _shown(v, options) if info["kind"] == "missing_video" else v
                s.add(info["kind"], f"{shown}: {info['reason']}")
    good = [info for info in probes.values() if info["ok"]]
    video_kinds = Counter(info["kind"] for info in probes.values() if not info["ok"])

    extra = dict(getattr(attr, "extra_columns", None) or {})
    label_column = extra.get("action_label") or raw_columns.get("action_label")
    labels = None
    if label_column and label_column not in absent_everywhere:
        names_path = getattr(attr, "label_names", None) or raw.get("label_names")
        labels = _check_labels(samples, label_column, names_path, options, problems)
    references = None
    if raw_columns.get("references") and raw_columns["references"] not in absent_everywhere:
        references = _check_references(samples, raw_columns["references"])
    categories = None
    if raw_columns.get("category"):
        column = raw_columns["category"]
        counts = Counter(
            str(s.record.get(column)) for s in samples if isinstance(s.record, dict) and column in s.record
        )
        categories = {"column": column, "histogram": dict(counts.most_common())}

    tokens = None
    if options.model:
        uses_token = any(
            options.action_token in text
            for s in samples
            if s.converted is not None
            for text in _message_texts(s.converted)
        )
        tokens = _count_tokens(samples, options, uses_token)

    bad = [s for s in samples if s.problems]
    by_kind: Counter = Counter()
    for s in bad:
        for kind in {p["kind"] for p in s.problems}:
            by_kind[kind] += 1
    for kind, count in by_kind.most_common():
        problems.append(f"{count} sample{'s' if count != 1 else ''}: {KIND_TEXT.get(kind, kind)}")

    report: dict[str, Any] = {
        "dataset": options.dataset,
        "dataset_dir": options.dataset_dir,
        "media_dir": options.media_dir,
        "files": files,
        "formatting": attr.formatting,
        "num_samples": len(samples),
        "num_bad_samples": len(bad),
        "num_good_samples": len(samples) - len(bad),
        "columns": {"declared": raw_columns, "missing": declared_missing},
        "videos": {
            "referenced": sum(len(s.videos) for s in samples),
            "unique": len(unique),
            "ok": len(good),
            "missing": video_kinds.get("missing_video", 0),
            "empty": video_kinds.get("empty_video", 0),
            "undecodable": video_kinds.get("undecodable_video", 0),
            "decoded_frames": "all" if not options.max_frames else f"first {options.max_frames}",
        },
        "video_stats": {
            key: _stats(info[key] for info in good) for key in ("duration", "fps", "width", "height", "frames")
        },
        "bad_videos": [
            {
                "path": _shown(path, options) if info["kind"] == "missing_video" else path,
                "kind": info["kind"],
                "reason": info["reason"],
                "samples": bad_video_samples[path],
            }
            for path, info in sorted(probes.items())
            if not info["ok"]
        ],
        "labels": labels,
        "references": references,
        "categories": categories,
        "tokens": tokens,
        "bad_samples": [
            {"index": s.index, "file": s.file, "file_index": s.file_index, "videos": s.videos, "problems": s.problems}
            for s in bad
        ],
        "problems": problems,
        "ok": not problems,
    }
    return report, records


# ----------------------------------------------------------------------------------------------------------------
# Report text
# ----------------------------------------------------------------------------------------------------------------


def _fmt_stats(stats: Optional[dict[str, float]], digits: int = 2) -> str:
    if not stats:
        return "-"
    return " / ".join(_fmt_number(stats[k], digits) for k in ("min", "median", "max"))


def _fmt_number(value: float, digits: int = 2) -> str:
    r"""``value`` with at most ``digits`` decimals, trailing decimal zeros dropped (140 stays 140, 2.50 is 2.5)."""
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_report(report: dict[str, Any], max_listed: int = MAX_LISTED) -> str:
    r"""The human-readable report."""
    lines = [
        f"check-data: `{report['dataset']}` ({report['formatting']}, {len(report['files'])} file"
        f"{'s' if len(report['files']) != 1 else ''}) in {report['dataset_dir']}",
        f"  samples: {report['num_samples']} ({report['num_bad_samples']} bad, {report['num_good_samples']} good)",
    ]
    v = report["videos"]
    lines.append(
        f"  videos: {v['referenced']} referenced, {v['unique']} unique: {v['ok']} ok, {v['missing']} missing, "
        f"{v['empty']} empty, {v['undecodable']} undecodable (decoded {v['decoded_frames']} frames)"
    )
    s = report["video_stats"]
    lines.append("  video stats (min / median / max):")
    lines.append(
        f"    duration (s): {_fmt_stats(s['duration'])}    fps: {_fmt_stats(s['fps'])}    "
        f"frames: {_fmt_stats(s['frames'], 0)}"
    )
    lines.append(f"    width: {_fmt_stats(s['width'], 0)}    height: {_fmt_stats(s['height'], 0)}")
    columns = report["columns"]
    missing = columns["missing"]
    declared = ", ".join(f"{k}={c}" for k, c in columns["declared"].items()) or "(none: host defaults)"
    lines.append(f"  columns declared: {declared}")
    for key, row in missing.items():
        note = " (optional column)" if row["optional"] and row["samples"] < report["num_samples"] else ""
        lines.append(f'    `{key}` ("{row["column"]}") absent from {row["samples"]} sample(s){note}')
    labels = report["labels"]
    if labels:
        source = f" from {os.path.basename(labels['names_file'])}" if labels["names_file"] else ""
        lines.append(
            f"  labels (`{labels['column']}`, {labels['num_classes']} classes{source}, {labels['invalid']} invalid):"
        )
        hist = labels["histogram"]
        counts = [row["count"] for row in hist]
        if len(hist) <= MAX_HISTOGRAM_ROWS:
            width = max([len(str(row["name"] or "")) for row in hist] + [4])
            lines += [f"    {row['label']:>4}  {str(row['name'] or ''):<{width}}  {row['count']}" for row in hist]
        elif counts:
            lines.append(
                f"    samples per class: min {min(counts)} / median {statistics.median(counts):g} / "
                f"max {max(counts)} (full histogram in the JSON report)"
            )
        if labels["classes_without_samples"]:
            empty = labels["classes_without_samples"]
            lines.append(
                f"    classes without samples: {len(empty)} ({', '.join(map(str, empty[:8]))}"
                f"{' ...' if len(empty) > 8 else ''})"
            )
    refs = report["references"]
    if refs:
        lines.append(
            f"  references per sample (`{refs['column']}`): {_fmt_stats(refs['per_sample'])} "
            f"(total {refs['total']}, {refs['invalid']} invalid)"
        )
    cats = report["categories"]
    if cats:
        shown = ", ".join(f"{k}: {n}" for k, n in list(cats["histogram"].items())[:10])
        lines.append(f"  categories (`{cats['column']}`): {shown}{' ...' if len(cats['histogram']) > 10 else ''}")
    tok = report["tokens"]
    if tok:
        lines.append(
            f"  tokens ({tok['counted']}; model {tok['model']}, template {tok['template']}, "
            f"cutoff_len {tok['cutoff_len']}, "
            f"video_maxlen {tok['video_maxlen']}, video_fps {tok['video_fps']}, "
            f"video_max_pixels {tok['video_max_pixels']}):"
        )
        lines.append(
            f"    tokens: {_fmt_stats(tok['tokens'], 0)}    "
            f"video tokens: {_fmt_stats(tok['video_tokens'], 0)}    "
            f"({tok['checked']} samples counted, {tok['errors']} failed)"
        )
        pool = tok.get("video_token_pooling")
        if pool:
            lines.append(
                f"    video_token_pool_stride {pool['stride']} ({pool['mode']}): video tokens "
                f"{_fmt_stats(pool['video_tokens_unpooled'], 0)} unpooled -> {pool['saving']}x fewer"
            )
        if tok["over_cutoff"]:
            lines.append(
                f"    {len(tok['over_cutoff'])} samples over cutoff_len {tok['cutoff_len']}: "
                f"raise cutoff_len to >= {tok['suggested_cutoff_len']}, "
                "or lower video_max_pixels / video_maxlen"
            )
    bad = report["bad_samples"]
    if bad:
        lines.append(f"  bad samples ({len(bad)}):")
        for row in bad[:max_listed]:
            where = f"{os.path.basename(row['file'])}[{row['file_index']}]"
            details = "; ".join(p["detail"] for p in row["problems"])
            lines.append(f"    #{row['index']} ({where}): {details}")
        if len(bad) > max_listed:
            lines.append(f"    ... and {len(bad) - max_listed} more (all in the JSON report)")
    if report["problems"]:
        lines.append("  problems:")
        lines += [f"    - {p}" for p in report["problems"]]
        lines.append(f"RESULT: {len(report['problems'])} problem(s) found")
    else:
        lines.append("RESULT: OK")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    r"""The flags of ``llamafactory-video check-data``."""
    parser.add_argument("--dataset", required=True, help="dataset name in dataset_info.json")
    parser.add_argument("--dataset-dir", required=True, help="folder of dataset_info.json (LlamaFactory dataset_dir)")
    parser.add_argument("--media-dir", default=None, help="base of relative media paths (default: --dataset-dir)")
    group = parser.add_argument_group("token count (optional)")
    group.add_argument("--model", default=None, help="model path: count every sample's tokens with its processor")
    group.add_argument("--template", default=None, help="LlamaFactory template, e.g. qwen2_vl (needed with --model)")
    group.add_argument("--cutoff-len", type=int, default=2048, help="cutoff_len of the training run (default 2048)")
    group.add_argument("--video-maxlen", type=int, default=None, help="video_maxlen (default: LlamaFactory's)")
    group.add_argument("--video-fps", type=float, default=None, help="video_fps (default: LlamaFactory's)")
    group.add_argument("--video-max-pixels", type=int, default=None, help="video_max_pixels (default: LlamaFactory's)")
    group.add_argument(
        "--video-token-pool-stride",
        type=int,
        default=1,
        help="count tokens as `video_token_pool_stride` would (Qwen2-VL family) and report the saving (default 1)",
    )
    group.add_argument(
        "--video-token-pool-mode", default="average", choices=("average", "max", "bilinear"), help="pooling mode"
    )
    group.add_argument("--trust-remote-code", action="store_true", help="pass trust_remote_code to the loaders")
    group.add_argument("--action-token", default="<ACTION>", help="classification token (default <ACTION>)")
    group.add_argument(
        "--count-answer",
        action="store_true",
        help="for <ACTION> data, count the answer too (action_lm_loss_weight > 0)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="decoding threads (default: min(8, CPUs); 1 decodes inline)",
    )
    parser.add_argument(
        "--max-frames",
        type=int,
        default=0,
        help="decode at most this many frames per video (default 0: all, catches truncated files)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="JSON report path (default: <dataset_dir>/<dataset>_check.json, or the temp folder when read-only)",
    )
    parser.add_argument(
        "--write-clean",
        default=None,
        metavar="FILE",
        help="write the data without the bad samples to FILE (.jsonl: JSON lines; else a JSON list)",
    )
    parser.add_argument("--max-listed", type=int, default=MAX_LISTED, help="bad samples listed in the printed report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    r"""Check, print, write the report (and the clean copy); 0 clean, 1 problems, 2 usage error."""
    options = CheckOptions(
        dataset=args.dataset,
        dataset_dir=args.dataset_dir,
        media_dir=args.media_dir,
        model=args.model,
        template=args.template,
        cutoff_len=args.cutoff_len,
        video_maxlen=args.video_maxlen,
        video_fps=args.video_fps,
        video_max_pixels=args.video_max_pixels,
        video_token_pool_stride=args.video_token_pool_stride,
        video_token_pool_mode=args.video_token_pool_mode,
        trust_remote_code=args.trust_remote_code,
        action_token=args.action_token,
        count_answer=args.count_answer,
        workers=args.workers,
        max_frames=args.max_frames,
        progress=not args.no_progress,
    )
    if args.workers < 1 or args.max_frames < 0 or args.cutoff_len < 1:
        print("error: --workers and --cutoff-len must be >= 1, --max-frames >= 0", file=sys.stderr)
        return 2
    try:
        report, records = check_dataset(options)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DataReadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    output = args.output or os.path.join(options.dataset_dir, f"{args.dataset}_check.json")
    if args.write_clean:
        bad = {row["index"] for row in report["bad_samples"]}
        clean = [record for i, record in enumerate(records) if i not in bad]
        report["clean_file"] = write_records(args.write_clean, clean)
        report["clean_samples"] = len(clean)
    print(format_report(report, max_listed=args.max_listed))
    written = _write_report(report, output, explicit=bool(args.output))
    if written is None and args.output:
        return 2  # an explicit --output that cannot be written is a usage error
    if written is not None:
        print(f"report: {written}")
    if args.write_clean:
        print(f"clean copy: {report['clean_file']} ({report['clean_samples']} of {report['num_samples']} samples)")
    return 0 if report["ok"] else 1


def _write_report(report: dict[str, Any], output: str, explicit: bool) -> Optional[str]:
    r"""Write the JSON report; the default place (beside the data) may be read-only: then fall back to the temp
    folder with a warning (the check's result, and its exit code, do not depend on where the report goes)."""
    import tempfile

    candidates = [output]
    if not explicit:
        candidates.append(os.path.join(tempfile.gettempdir(), "llamafactory_video_check", os.path.basename(output)))
    for i, path in enumerate(candidates):
        path = os.path.abspath(path)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2, ensure_ascii=False)
                f.write("\n")
        except OSError as err:
            level = "error" if explicit else "warning"
            print(f"{level}: cannot write the report to {path}: {err}", file=sys.stderr)
            continue
        if i > 0:
            print(f"warning: the dataset folder is not writable; wrote the report to {path} instead", file=sys.stderr)
        return path
    return None


COMMAND = (HELP, add_arguments, run)
"""``(help, add_arguments, run)``: the ``Command`` registered as ``check-data`` in :mod:`llamafactory_video.cli`."""


def main(argv: Optional[list[str]] = None) -> int:
    r"""``python -m llamafactory_video.tools.check_data ...`` (same as ``llamafactory-video check-data``)."""
    parser = argparse.ArgumentParser(prog="llamafactory-video check-data", description=HELP)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
