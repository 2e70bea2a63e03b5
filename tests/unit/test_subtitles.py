"""Subtitle parsing (SRT / WebVTT quirks), the host's frame sampling rule, alignment and the prompt text."""

import math
import os
from types import SimpleNamespace

import pytest

from llamafactory_video.data.subtitles import (
    Cue,
    SubtitleError,
    align_cues,
    find_sidecar,
    format_subtitles,
    frame_windows,
    load_subtitles,
    parse_subtitles,
    sample_indices,
    subtitle_text,
    to_srt,
)

SRT = (
    '\ufeff1\r\n00:00:01,000 --> 00:00:02,500\r\n<i>Hello</i> there,\r\n<font color="#fff">friend</font>.\r\n\r\n'
    "2\r\n00:00:03,000 --> 00:00:04,000\r\n{\\an8}Tom &amp; Jerry\r\n\r\n"
    "3\r\n01:00:00,5 --> 01:00:01,250\r\nLate line\r\n"
)

VTT = """WEBVTT - a title line
Kind: captions
Language: en

NOTE this is a comment
that spans two lines

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.000 align:start position:10%
<v Roger>Hi <c.yellow>you</c></v>

00:00:02.000 --> 00:00:03.500
<00:00:02.500>Karaoke
second line
"""


def test_parse_srt_multiline_tags_bom_crlf():
    cues = parse_subtitles(SRT)
    assert cues == [
        Cue(1.0, 2.5, "Hello there, friend."),
        Cue(3.0, 4.0, "Tom & Jerry"),
        Cue(3600.5, 3601.25, "Late line"),
    ]


def test_parse_vtt_header_note_style_settings():
    assert parse_subtitles(VTT) == [Cue(1.0, 2.0, "Hi you"), Cue(2.0, 3.5, "Karaoke second line")]


def test_srt_round_trip_and_malformed(tmp_path):
    cues = [Cue(0.0, 1.234, "a"), Cue(61.5, 3723.004, "b c")]
    assert parse_subtitles(to_srt(cues)) == cues
    bad = tmp_path / "bad.srt"
    bad.write_text("1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:05,000 -> 00:00:06,000\nbroken\n")
    with pytest.raises(SubtitleError, match=r"bad\.srt:5: no 'start --> end' timing line"):
        load_subtitles(str(bad))
    bad.write_text("1\n00:00:03,000 --> 00:00:02,000\nbackwards\n")
    with pytest.raises(SubtitleError, match=r"bad\.srt:2: cue ends"):
        load_subtitles(str(bad))
    with pytest.raises(SubtitleError, match=":1: a WebVTT file must start"):
        from llamafactory_video.data.subtitles import parse_vtt

        parse_vtt("00:01.000 --> 00:02.000\nx\n", "x.vtt")


def test_find_sidecar(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert find_sidecar(str(video)) is None
    (tmp_path / "clip.en.vtt").write_text("WEBVTT\n")
    (tmp_path / "clip2.srt").write_text("")
    assert find_sidecar(str(video)) == str(tmp_path / "clip.en.vtt")
    (tmp_path / "clip.srt").write_text("")
    assert find_sidecar(str(video)) == str(tmp_path / "clip.srt")


@pytest.mark.parametrize(
    ("total", "duration", "fps", "maxlen"),
    [(240, 10.0, 2.0, 128), (240, 10.0, 2.0, 8), (7, 3.5, 2.0, 128), (100, 0.3, 2.0, 128), (0, 5.0, 2.0, 6)],
)
def test_sample_indices_is_the_hosts_rule(total, duration, fps, maxlen):
    from fractions import Fraction

    from llamafactory.data.mm_plugin import BasePlugin

    stream = SimpleNamespace(frames=total, duration=int(duration * 1000), time_base=Fraction(1, 1000))
    host = BasePlugin._get_video_sample_indices(None, stream, video_fps=fps, video_maxlen=maxlen)
    assert sample_indices(total, duration, fps, maxlen) == [int(i) for i in host]


def test_windows_and_alignment():
    stamps = [0.0, 1.0, 2.0, 3.0]
    assert frame_windows(stamps, 0.0, 4.0) == [(0.0, 0.5), (0.5, 1.5), (1.5, 2.5), (2.5, 4.0)]
    cues = [
        Cue(0.1, 1.2, "first"),  # frames 1-2
        Cue(1.6, 1.7, "short"),  # between sampled frames, lands on frame 3
        Cue(1.8, 2.2, "short"),  # same text, adjacent: merged
        Cue(5.0, 6.0, "after the video"),
    ]
    aligned = align_cues(cues, stamps, 0.0, 4.0)
    assert [(a.first_frame, a.last_frame, a.text) for a in aligned] == [(0, 1, "first"), (2, 2, "short")]
    text = format_subtitles(aligned, stamps)
    assert text == ("Subtitles (timed to the 4 sampled frames):\n[frames 1-2, 0.0s-1.0s] first\n[frame 3, 2.0s] short")
    assert subtitle_text([], stamps) == ""


def test_alignment_of_a_clip_and_char_cap():
    stamps = [10.0, 12.0, 14.0]
    cues = [Cue(9.0, 10.2, "straddles the start"), Cue(12.5, 20.0, "runs past the end"), Cue(2.0, 3.0, "before")]
    aligned = align_cues(cues, stamps, 10.0, 15.0)
    assert [(a.first_frame, a.last_frame) for a in aligned] == [(0, 0), (1, 2)]
    capped = format_subtitles(aligned, stamps, max_chars=90)
    assert capped.splitlines()[-1] == "... (1 more cues left out)"


def test_with_subtitles_uses_the_sidecar_and_sampled_frames(tmp_path):
    import numpy as np

    from llamafactory_video.data.subtitles import probe_video, with_subtitles
    from llamafactory_video.testing.synthetic_videos import write_video

    video = str(tmp_path / "v.mp4")
    write_video(np.zeros((16, 32, 32, 3), dtype=np.uint8), video, fps=4)  # 4 s
    info = probe_video(video)
    assert (info.total_frames, math.isclose(info.duration, 4.0, abs_tol=0.3)) == (16, True)
    assert with_subtitles("Q?", video) == "Q?"
    with open(os.path.splitext(video)[0] + ".srt", "w", encoding="utf-8") as f:
        f.write("1\n00:00:00,000 --> 00:00:01,000\nHello\n\n2\n00:00:03,000 --> 00:00:04,000\nBye\n")
    text = with_subtitles("Q?", video, video_fps=1.0)
    stamps = info.timestamps(1.0, 128)
    assert stamps == [0.0, 1.25, 2.5, 3.75]  # host: linspace(0, 15, 4) -> 0, 5, 10, 15 at 4 fps
    assert text == (
        "Subtitles (timed to the 4 sampled frames):\n[frames 1-2, 0.0s-1.2s] Hello\n[frames 3-4, 2.5s-3.8s] Bye\nQ?"
    )
