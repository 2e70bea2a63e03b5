"""``llamafactory-video long-qa``: answer a question about a long video by retrieving its relevant clips.

Slice the video into clips (``--clip-seconds``, ``--overlap``), caption each clip with the VLM (batched,
progress bar), index the captions and subtitles on disk (reused by the next question about the same video),
retrieve the top-k clips (BM25, or embeddings with ``--embedder``), answer from their frames and captions.
Module-level imports are standard library only (``llamafactory-video --help`` imports this package).
"""

from __future__ import annotations

import argparse

HELP = "answer a question about a long video: slice, caption clips, index, retrieve top-k clips, answer"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (Qwen2-VL family), as model_name_or_path")
    parser.add_argument("--adapter", help="LoRA adapter folder (adapter_name_or_path)")
    parser.add_argument("--template", default="qwen2_vl", help="chat template (default qwen2_vl)")
    parser.add_argument("--video", required=True, help="video file")
    parser.add_argument("--question", required=True, action="append", help="question (repeat to ask several)")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="clip length in seconds (default 30)")
    parser.add_argument("--overlap", type=float, default=0.0, help="seconds shared by consecutive clips (default 0)")
    parser.add_argument("--video-fps", type=float, default=2.0, help="frames sampled per second of a clip (default 2)")
    parser.add_argument("--video-maxlen", type=int, default=16, help="max frames sampled per clip (default 16)")
    parser.add_argument("--top-k", type=int, default=3, help="clips retrieved to answer from (default 3)")
    parser.add_argument("--batch-size", type=int, default=4, help="clips captioned per generate call (default 4)")
    parser.add_argument("--caption-prompt", default=None, help="prompt used to caption each clip")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="caption length cap in tokens (default 64)")
    parser.add_argument("--answer-max-new-tokens", type=int, default=128, help="answer length cap (default 128)")
    parser.add_argument("--subtitles", help=".srt / .vtt for the video (default: the file next to it, if any)")
    parser.add_argument("--whisper", help="local Whisper checkpoint: transcribe the audio when there are no subtitles")
    parser.add_argument("--embedder", help="local sentence-embedding (or sparc_align) model: embedding retrieval")
    parser.add_argument("--embedder-kind", choices=("hf", "sparc_align"), default="hf", help="how to load --embedder")
    parser.add_argument("--index-dir", help="index folder (default: .llamafactory-video-index next to the video)")
    parser.add_argument("--rebuild", action="store_true", help="re-caption even if an index exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the result(s) as JSON")


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from ...data.subtitles import SubtitleError
    from .pipeline import CAPTION_PROMPT, LongQAConfig, LongVideoQA, format_result

    config = LongQAConfig(
        model=args.model,
        template=args.template,
        adapter=args.adapter,
        clip_seconds=args.clip_seconds,
        overlap=args.overlap,
        video_fps=args.video_fps,
        video_maxlen=args.video_maxlen,
        top_k=args.top_k,
        batch_size=args.batch_size,
        caption_prompt=args.caption_prompt or CAPTION_PROMPT,
        caption_max_new_tokens=args.max_new_tokens,
        answer_max_new_tokens=args.answer_max_new_tokens,
        index_dir=args.index_dir,
        subtitles=args.subtitles,
        whisper=args.whisper,
        embedder=args.embedder,
        embedder_kind=args.embedder_kind,
        rebuild=args.rebuild,
        progress=not args.no_progress,
    )
    if args.json:  # stdout carries only the JSON: the host's log handler (stdout) moves to stderr
        import logging

        from ..._logging import get_logger

        get_logger(__name__)
        for handler in logging.getLogger("llamafactory").handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                handler.setStream(sys.stderr)
    qa = LongVideoQA(config)
    results = []
    try:
        for question in args.question:
            results.append(qa.ask(args.video, question))
            qa.config.rebuild = False
    except (ValueError, SubtitleError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(f"Q: {r['question']}\n{format_result(r)}" for r in results))
    return 0


COMMAND = (HELP, add_arguments, run)
