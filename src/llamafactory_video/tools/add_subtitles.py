"""``llamafactory-video add-subtitles``: write each sample's subtitles into its prompt, as a new dataset.

Why a preprocessing step rather than a host data patch: the stock ``sft`` stage then trains on the written
file as on any other dataset (LlamaBoard, ``llamafactory-cli train``, every rank of torchrun), nothing in
LlamaFactory's loader changes, and the text the model sees is visible in the JSON. The subtitle text is
aligned to the frames the host will sample, so ``--video-fps`` / ``--video-maxlen`` must equal the training
YAML's ``video_fps`` / ``video_maxlen`` (host defaults 2.0 / 128); the written ``dataset_info.json`` entry
records them.

Subtitles of a sample come from its ``subtitles`` column (a ``.srt`` / ``.vtt`` path, relative to the media
folder, or SRT / WebVTT text), else from the file next to its first video (``clip.srt``, ``clip.vtt``,
``clip.en.srt``), else, with ``--whisper PATH``, from speech-to-text (written next to the video as ``.srt``).
Samples without subtitles are written unchanged. The text goes right after the ``<video>`` placeholder of
the first user turn (sharegpt) or of the prompt (alpaca).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

HELP = "write subtitles (.srt/.vtt next to the video, a subtitles column, or Whisper) into a dataset's prompts"
VIDEO_PLACEHOLDER = "<video>"


def _load_rows(path: str) -> list[dict[str, Any]]:
    from .convert.common import ConversionError, load_json

    if path.endswith(".jsonl"):
        rows = []
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise ConversionError(path, f"invalid JSON: {err.msg}", line=number) from None
        return rows
    data, _ = load_json(path)
    if not isinstance(data, list):
        raise ConversionError(path, f"expected a JSON list of samples, got {type(data).__name__}")
    return data


def insert_text(content: str, text: str) -> str:
    r"""``content`` with ``text`` on its own line right after the first ``<video>`` (else at the start)."""
    if VIDEO_PLACEHOLDER in content:
        head, tail = content.split(VIDEO_PLACEHOLDER, 1)
        return f"{head}{VIDEO_PLACEHOLDER}\n{text}\n{tail.lstrip()}"
    return f"{text}\n{content}"


def add_subtitles(
    dataset_dir: str,
    dataset: str,
    output_name: str | None = None,
    video_fps: float = 2.0,
    video_maxlen: int = 128,
    media_dir: str | None = None,
    whisper: str | None = None,
    max_chars: int = 2000,
) -> dict[str, Any]:
    r"""Write ``<output_name>.json`` (default ``<dataset>_subs``) and register it; returns a summary dict."""
    from ..data.subtitles import SubtitleError, probe_video, resolve_cues, subtitle_text
    from .convert.common import ConversionError, entry_error, load_json, merge_dataset_info, write_json

    dataset_dir = os.path.abspath(dataset_dir)
    info_path = os.path.join(dataset_dir, "dataset_info.json")
    info, _ = load_json(info_path)
    if dataset not in info:
        raise ConversionError(info_path, f"no dataset {dataset!r} (registered: {', '.join(sorted(info)) or 'none'})")
    entry = dict(info[dataset])
    if "file_name" not in entry:
        raise ConversionError(info_path, "only local file datasets are supported", entry=dataset, key="file_name")
    source = os.path.join(dataset_dir, entry["file_name"])
    rows = _load_rows(source)
    columns = entry.get("columns", {})
    sharegpt = entry.get("formatting", "alpaca") == "sharegpt"
    tags = entry.get("tags", {})
    messages_key = columns.get("messages", "conversations")
    role_tag, content_tag = tags.get("role_tag", "from"), tags.get("content_tag", "value")
    user_tag = tags.get("user_tag", "human")
    prompt_key = columns.get("prompt", "instruction")
    videos_key = columns.get("videos", "videos")
    subtitles_key = columns.get("subtitles", "subtitles")
    media_dir = os.path.abspath(media_dir or entry.get("media_dir") or dataset_dir)

    transcriber = None
    if whisper:
        from ..data.speech import WhisperTranscriber

        transcriber = WhisperTranscriber(whisper)

    out_rows, with_subs, transcribed = [], 0, 0
    lines = [None] * len(rows)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise entry_error(source, lines, i, f"expected an object, got {type(row).__name__}", name="sample")
        videos = row.get(videos_key) or []
        videos = [videos] if isinstance(videos, str) else videos
        row = {k: v for k, v in row.items() if k != subtitles_key}
        if not videos:
            out_rows.append(row)
            continue
        video = videos[0] if os.path.isabs(videos[0]) else os.path.join(media_dir, videos[0])
        raw = rows[i].get(subtitles_key)
        if isinstance(raw, str) and raw.strip() and "-->" not in raw and not os.path.isabs(raw):
            raw = os.path.join(media_dir, raw)
        try:
            cues = resolve_cues(video, raw if isinstance(raw, str) and raw.strip() else None)
            if cues is None and transcriber is not None:
                cues = transcriber.transcribe_to_srt(video)
                transcribed += 1
            if cues:
                timestamps = probe_video(video).timestamps(video_fps, video_maxlen)
                text = subtitle_text(cues, timestamps, max_chars=max_chars)
            else:
                text = ""
        except (SubtitleError, ValueError) as err:
            raise entry_error(source, lines, i, str(err), key=subtitles_key, name="sample") from None
        if text:
            with_subs += 1
            if sharegpt:
                turns = [dict(turn) for turn in row.get(messages_key, [])]
                target = next((t for t in turns if t.get(role_tag) == user_tag), None)
                if target is None:
                    raise entry_error(source, lines, i, "no user turn", key=messages_key, name="sample")
                target[content_tag] = insert_text(str(target.get(content_tag, "")), text)
                row[messages_key] = turns
            else:
                row[prompt_key] = insert_text(str(row.get(prompt_key, "")), text)
        out_rows.append(row)

    output_name = output_name or f"{dataset}_subs"
    file_name = f"{output_name}.json"
    write_json(os.path.join(dataset_dir, file_name), out_rows)
    new_entry = {**entry, "file_name": file_name}
    new_entry["columns"] = {k: v for k, v in columns.items() if k != "subtitles"}
    new_entry.pop("media_dir", None)
    if media_dir != dataset_dir:
        new_entry["media_dir"] = media_dir
    merge_dataset_info(dataset_dir, {output_name: new_entry})
    return {
        "dataset": output_name,
        "file": os.path.join(dataset_dir, file_name),
        "samples": len(out_rows),
        "with_subtitles": with_subs,
        "transcribed": transcribed,
        "video_fps": video_fps,
        "video_maxlen": video_maxlen,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset-dir", default="data", help="folder with dataset_info.json (default: data)")
    parser.add_argument("--dataset", required=True, help="registered dataset name to read")
    parser.add_argument("--output-name", help="name of the written dataset (default: <dataset>_subs)")
    parser.add_argument("--video-fps", type=float, default=2.0, help="training video_fps (default 2.0)")
    parser.add_argument("--video-maxlen", type=int, default=128, help="training video_maxlen (default 128)")
    parser.add_argument(
        "--media-dir", help="folder relative video paths are under (default: the entry's / dataset dir)"
    )
    parser.add_argument("--whisper", help="local Whisper checkpoint: transcribe videos that have no subtitles")
    parser.add_argument("--max-chars", type=int, default=2000, help="cap on the subtitle text per sample")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    import sys

    from .convert.common import ConversionError

    try:
        summary = add_subtitles(
            args.dataset_dir,
            args.dataset,
            output_name=args.output_name,
            video_fps=args.video_fps,
            video_maxlen=args.video_maxlen,
            media_dir=args.media_dir,
            whisper=args.whisper,
            max_chars=args.max_chars,
        )
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['dataset']}: {summary['samples']} samples, {summary['with_subtitles']} with subtitles "
            f"({summary['transcribed']} transcribed) -> {summary['file']} "
            f"(video_fps={summary['video_fps']}, video_maxlen={summary['video_maxlen']})"
        )
    return 0


COMMAND = (HELP, add_arguments, run)
