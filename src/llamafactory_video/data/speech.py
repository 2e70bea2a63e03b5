r"""Speech to subtitles with transformers' Whisper pipeline and a LOCAL checkpoint (nothing is downloaded).

The audio track is decoded with PyAV (already a LlamaFactory dependency), mixed to mono and resampled to the
feature extractor's rate (16 kHz for Whisper), then ``pipeline("automatic-speech-recognition",
return_timestamps=True)`` gives timed chunks, written as an ``.srt`` next to the video.
"""

from __future__ import annotations

import os
from typing import Any

from .subtitles import Cue, to_srt


def load_audio(path: str | os.PathLike, sampling_rate: int = 16000) -> Any:
    r"""Mono float32 samples of ``path``'s first audio stream at ``sampling_rate`` (a 1-D numpy array)."""
    import av
    import numpy as np

    path = os.fspath(path)
    try:
        container = av.open(path, "r")
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{path}: cannot open: {err}") from None
    with container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise ValueError(f"{path}: no audio stream to transcribe")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise ValueError(f"{path}: the audio stream decodes to no samples")
    return np.concatenate(chunks).astype(np.float32)


def chunks_to_cues(chunks: list[dict[str, Any]], audio_seconds: float) -> list[Cue]:
    r"""Pipeline chunks (``{"timestamp": (start, end), "text"}``) to cues inside ``[0, audio_seconds]``.

    A missing end becomes the next chunk's start or the end of the audio, a missing start the previous end;
    times past the end of the audio (Whisper pads its 30 s window) are clamped, chunks starting there dropped.
    """
    cues: list[Cue] = []
    previous_end = 0.0
    for i, chunk in enumerate(chunks):
        text = " ".join(str(chunk.get("text", "")).split())
        start, end = (*tuple(chunk.get("timestamp") or (None, None)), None, None)[:2]
        start = previous_end if start is None else float(start)
        if end is None:
            following = chunks[i + 1].get("timestamp") if i + 1 < len(chunks) else None
            end = following[0] if following and following[0] is not None else audio_seconds
        start = min(max(start, 0.0), audio_seconds)
        end = min(max(float(end), start), audio_seconds)
        previous_end = end
        if text and start < audio_seconds:
            cues.append(Cue(round(start, 3), round(end, 3), text))
    return cues


class WhisperTranscriber:
    r"""Transcribe videos with a local Whisper checkpoint (``WhisperForConditionalGeneration`` + processor)."""

    def __init__(
        self,
        model_path: str,
        device: str | None = None,
        language: str | None = None,
        chunk_length_s: int | None = None,
    ) -> None:
        if not os.path.isdir(model_path):
            raise ValueError(f"{model_path}: Whisper checkpoint folder not found (a local path is required)")
        import torch
        from transformers import pipeline

        self.model_path = model_path
        self.language = language
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        extra = {"chunk_length_s": chunk_length_s} if chunk_length_s else {}  # default: Whisper's own long-form
        self.pipe = pipeline("automatic-speech-recognition", model=model_path, device=device, **extra)
        self.sampling_rate = int(self.pipe.feature_extractor.sampling_rate)

    def transcribe(self, video: str | os.PathLike, max_new_tokens: int | None = None) -> list[Cue]:
        audio = load_audio(video, self.sampling_rate)
        kwargs: dict[str, Any] = {}
        if self.language:
            kwargs["language"] = self.language
        if max_new_tokens:
            kwargs["max_new_tokens"] = max_new_tokens
        call: dict[str, Any] = {"return_timestamps": True}
        if kwargs:
            call["generate_kwargs"] = kwargs
        result = self.pipe({"raw": audio, "sampling_rate": self.sampling_rate}, **call)
        chunks = result.get("chunks") or [{"timestamp": (0.0, None), "text": result.get("text", "")}]
        return chunks_to_cues(chunks, len(audio) / self.sampling_rate)

    def transcribe_to_srt(
        self, video: str | os.PathLike, output: str | None = None, max_new_tokens: int | None = None
    ) -> list[Cue]:
        r"""Transcribe and write ``output`` (default: the video's path with ``.srt``); returns the cues."""
        cues = self.transcribe(video, max_new_tokens=max_new_tokens)
        output = output or os.path.splitext(os.fspath(video))[0] + ".srt"
        with open(output, "w", encoding="utf-8") as f:
            f.write(to_srt(cues))
        return cues
