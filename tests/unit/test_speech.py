"""Speech to subtitles: the Whisper pipeline path on a tiny Whisper built offline (it runs and writes a valid
.srt inside the audio's duration; the words are random), and the chunk -> cue rules."""

import numpy as np
import pytest

from llamafactory_video.data.speech import chunks_to_cues
from llamafactory_video.data.subtitles import Cue, load_subtitles


def test_chunks_to_cues():
    chunks = [
        {"timestamp": (0.0, 1.5), "text": " Hello  there "},
        {"timestamp": (1.5, None), "text": "open end"},
        {"timestamp": (3.0, 40.0), "text": "past the audio"},
        {"timestamp": (None, 5.5), "text": ""},
        {"timestamp": (31.0, 33.0), "text": "after the end"},
    ]
    assert chunks_to_cues(chunks, audio_seconds=10.0) == [
        Cue(0.0, 1.5, "Hello there"),
        Cue(1.5, 3.0, "open end"),
        Cue(3.0, 10.0, "past the audio"),
    ]


def _video_with_audio(path, seconds=2.0, rate=16000):
    import av

    with av.open(path, "w") as container:
        video = container.add_stream("mpeg4", rate=4)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        for _ in range(int(seconds * 4)):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        for start in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


def test_transcribe_with_tiny_whisper(tmp_path, capsys):
    from llamafactory_video.cli import main
    from llamafactory_video.data.speech import load_audio
    from llamafactory_video.testing.tiny_aux_models import build_tiny_whisper

    whisper = build_tiny_whisper(str(tmp_path / "whisper"))
    video = _video_with_audio(str(tmp_path / "talk.mp4"))
    audio = load_audio(video)
    assert audio.dtype == np.float32 and abs(len(audio) / 16000 - 2.0) < 0.1
    assert main(["transcribe", "--whisper", whisper, "--video", video, "--max-new-tokens", "24"]) == 0
    assert "cues ->" in capsys.readouterr().out
    cues = load_subtitles(str(tmp_path / "talk.srt"))
    assert cues, "the tiny Whisper emits text tokens, so the .srt has cues"
    assert all(0.0 <= c.start <= c.end <= len(audio) / 16000 + 1e-3 and c.text for c in cues)


def test_transcribe_errors(tmp_path, capsys):
    from llamafactory_video.cli import main
    from llamafactory_video.testing.synthetic_videos import write_video

    assert main(["transcribe", "--whisper", str(tmp_path / "nope"), "--video", "x.mp4"]) == 1
    assert "Whisper checkpoint folder not found" in capsys.readouterr().err
    silent = str(tmp_path / "silent.mp4")
    write_video(np.zeros((4, 32, 32, 3), np.uint8), silent)
    from llamafactory_video.data.speech import load_audio

    with pytest.raises(ValueError, match="silent.mp4: no audio stream"):
        load_audio(silent)
