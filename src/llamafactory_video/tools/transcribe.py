"""``llamafactory-video transcribe``: speech to an ``.srt`` next to the video, with a local Whisper checkpoint."""

from __future__ import annotations

import argparse

HELP = "write an .srt for a video from its audio with a local Whisper checkpoint (transformers pipeline)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--whisper", required=True, help="local Whisper checkpoint folder")
    parser.add_argument("--video", required=True, nargs="+", help="video file(s)")
    parser.add_argument("--output", help="output .srt (one video only; default: the video path with .srt)")
    parser.add_argument("--language", help="spoken language, e.g. en (default: Whisper detects it)")
    parser.add_argument("--max-new-tokens", type=int, help="cap on generated tokens per 30 s window")


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from ..data.speech import WhisperTranscriber

    if args.output and len(args.video) > 1:
        print("error: --output needs exactly one --video", file=sys.stderr)
        return 2
    try:
        transcriber = WhisperTranscriber(args.whisper, language=args.language)
        for video in args.video:
            output = args.output or os.path.splitext(video)[0] + ".srt"
            cues = transcriber.transcribe_to_srt(video, output, max_new_tokens=args.max_new_tokens)
            print(f"{video}: {len(cues)} cues -> {output}")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


COMMAND = (HELP, add_arguments, run)
