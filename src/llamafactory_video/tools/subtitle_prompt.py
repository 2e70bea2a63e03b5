"""``llamafactory-video subtitle-prompt``: a question preceded by the video's subtitles, timed to its frames.

Paste the output into LlamaBoard's chat tab or ``llamafactory-cli chat`` together with the video (the same
``video_fps`` / ``video_maxlen`` as the chat settings), or call
``llamafactory_video.data.subtitles.with_subtitles`` from Python.
"""

from __future__ import annotations

import argparse

HELP = "print a question preceded by the video's subtitles (.srt/.vtt) aligned to the frames the model sees"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", required=True, help="video file")
    parser.add_argument("--question", required=True, help="the question")
    parser.add_argument("--subtitles", help=".srt / .vtt (default: the file next to the video)")
    parser.add_argument("--video-fps", type=float, default=2.0, help="the model's video_fps (default 2.0)")
    parser.add_argument("--video-maxlen", type=int, default=128, help="the model's video_maxlen (default 128)")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..data.subtitles import SubtitleError, with_subtitles

    try:
        print(with_subtitles(args.question, args.video, args.subtitles, args.video_fps, args.video_maxlen))
    except (SubtitleError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


COMMAND = (HELP, add_arguments, run)
