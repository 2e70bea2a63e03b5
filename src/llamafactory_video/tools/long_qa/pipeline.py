r"""Long-video QA: slice -> caption each clip -> on-disk index (captions + subtitles) -> retrieve top-k -> answer.

The index is one JSON file per (video, settings): ``<index_dir>/<video stem>-<key>.json`` where ``key`` hashes
the video's absolute path, size and mtime, the model / adapter / template, the clip and sampling settings, the
caption prompt and the subtitle source. A later question about the same video with the same settings loads it
and captions nothing; embedding retrievers also keep the clip embeddings in it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..._literals import check_literal_fields
from ...data.subtitles import Cue, align_cues, format_subtitles, probe_video, resolve_cues
from .clips import Clip, iter_clip_frames, make_clips
from .retrieval import BM25Retriever, EmbeddingRetriever, Retriever

INDEX_VERSION = 1
DEFAULT_INDEX_FOLDER = ".llamafactory-video-index"
CAPTION_PROMPT = "Describe what happens in this video clip in one or two sentences."
ANSWER_INSTRUCTIONS = "Answer the question using the video clips above, their captions and subtitles."

Captioner = Callable[[Sequence[Clip], Sequence[list[Any]]], list[str]]
"""``captioner(clips, frames_per_clip) -> captions``: the VLM by default; injectable (tests, other models)."""


def _logger():
    from ..._logging import get_logger

    return get_logger(__name__)


def hms(seconds: float) -> str:
    r"""``m:ss.s`` or ``h:mm:ss.s``."""
    minutes, secs = divmod(max(0.0, seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


@dataclass
class LongQAConfig:
    model: str | None = None
    template: str = "qwen2_vl"
    adapter: str | None = None
    clip_seconds: float = 30.0
    overlap: float = 0.0
    video_fps: float = 2.0
    video_maxlen: int = 16
    top_k: int = 3
    batch_size: int = 4
    caption_prompt: str = CAPTION_PROMPT
    caption_max_new_tokens: int = 64
    answer_max_new_tokens: int = 128
    index_dir: str | None = None
    subtitles: str | None = None
    whisper: str | None = None
    embedder: str | None = None
    embedder_kind: Literal["hf", "sparc_align"] = "hf"
    rebuild: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        check_literal_fields(self)

    def index_settings(self) -> dict[str, Any]:
        def norm(path: str | None) -> str | None:
            return os.path.abspath(path) if path and os.path.exists(path) else path

        return {
            "version": INDEX_VERSION,
            "model": norm(self.model),
            "adapter": norm(self.adapter),
            "template": self.template,
            "clip_seconds": self.clip_seconds,
            "overlap": self.overlap,
            "video_fps": self.video_fps,
            "video_maxlen": self.video_maxlen,
            "caption_prompt": self.caption_prompt,
            "caption_max_new_tokens": self.caption_max_new_tokens,
        }


def _file_id(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def index_path(video: str, settings: dict[str, Any], index_dir: str | None = None) -> str:
    r"""Where the index of ``video`` under ``settings`` lives (the key changes when the video file changes)."""
    key = hashlib.sha256(json.dumps({"video": _file_id(video), **settings}, sort_keys=True).encode()).hexdigest()
    folder = index_dir or os.path.join(os.path.dirname(os.path.abspath(video)), DEFAULT_INDEX_FOLDER)
    stem = os.path.splitext(os.path.basename(video))[0]
    return os.path.join(folder, f"{stem}-{key[:16]}.json")


def clip_document(clip: dict[str, Any]) -> str:
    r"""The text a retriever sees for a clip: its caption and its subtitle lines."""
    return " ".join(part for part in (clip.get("caption", ""), clip.get("subtitle_plain", "")) if part)


class LongVideoQA:
    r"""The long-video QA pipeline. ``captioner`` / ``answerer`` / ``retriever`` default to the host VLM and
    BM25 (or embeddings with ``config.embedder``); ``captioned_clips`` counts the clips captioned so far."""

    def __init__(
        self,
        config: LongQAConfig,
        captioner: Captioner | None = None,
        answerer: Callable[[str, list[list[Any]]], str] | None = None,
        retriever: Retriever | None = None,
    ) -> None:
        self.config = config
        self._captioner = captioner
        self._answerer = answerer
        self._retriever = retriever
        self._vlm = None
        self.captioned_clips = 0

    # ------------------------------------------------------------------------------------------------ parts

    @property
    def vlm(self):
        if self._vlm is None:
            if not self.config.model:
                raise ValueError("--model is required to caption clips and answer")
            from .vlm import HostVLM

            self._vlm = HostVLM(
                self.config.model,
                template=self.config.template,
                adapter=self.config.adapter,
                video_fps=self.config.video_fps,
                video_maxlen=self.config.video_maxlen,
                max_new_tokens=max(self.config.caption_max_new_tokens, self.config.answer_max_new_tokens),
            )
        return self._vlm

    def retriever(self) -> Retriever:
        if self._retriever is None:
            if self.config.embedder:
                self._retriever = EmbeddingRetriever.from_path(self.config.embedder, self.config.embedder_kind)
            else:
                self._retriever = BM25Retriever()
        return self._retriever

    def _caption(self, clips: Sequence[Clip], frames: Sequence[list[Any]]) -> list[str]:
        if self._captioner is not None:
            return list(self._captioner(clips, frames))
        vlm = self.vlm
        vlm.max_new_tokens = self.config.caption_max_new_tokens
        return vlm.generate([self.config.caption_prompt] * len(clips), [[f] for f in frames])

    def _answer(self, prompt: str, videos: list[list[Any]]) -> str:
        if self._answerer is not None:
            return self._answerer(prompt, videos)
        vlm = self.vlm
        vlm.max_new_tokens = self.config.answer_max_new_tokens
        return vlm.generate([prompt], [videos])[0]

    def _cues(self, video: str) -> tuple[list[Cue] | None, dict[str, Any]]:
        r"""Subtitle cues (``--subtitles``, a sidecar file, else none) and what identifies their source."""
        from ...data.subtitles import find_sidecar

        cues = resolve_cues(video, self.config.subtitles)
        if cues is not None:
            source = self.config.subtitles or find_sidecar(video) or ""
            if os.path.isfile(source):
                return cues, {"subtitles": _file_id(source)}
            return cues, {"subtitles": {"sha256": hashlib.sha256(source.encode()).hexdigest()[:16]}}
        if self.config.whisper:
            return None, {"subtitles": {"whisper": os.path.abspath(self.config.whisper)}}
        return None, {"subtitles": None}

    # ------------------------------------------------------------------------------------------------ index

    def build_index(self, video: str) -> tuple[dict[str, Any], str, bool]:
        r"""``(index, path, reused)``: load the index of ``video`` or build it (captioning every clip)."""
        if not os.path.isfile(video):
            raise ValueError(f"{video}: video not found")
        cfg = self.config
        cues, subtitle_source = self._cues(video)
        settings = {**cfg.index_settings(), **subtitle_source}
        path = index_path(video, settings, cfg.index_dir)
        logger = _logger()
        if os.path.isfile(path) and not cfg.rebuild:
            with open(path, encoding="utf-8") as f:
                index = json.load(f)
            if index.get("version") == INDEX_VERSION and index.get("clips"):
                logger.info_rank0(f"long-qa: index reused: {path} ({len(index['clips'])} clips, no captioning)")
                return index, path, True

        info = probe_video(video)
        clips = make_clips(info, cfg.clip_seconds, cfg.overlap, cfg.video_fps, cfg.video_maxlen)
        if cues is None and cfg.whisper:
            from ...data.speech import WhisperTranscriber

            cues = WhisperTranscriber(cfg.whisper).transcribe(video)
            logger.info_rank0(f"long-qa: transcribed {len(cues)} subtitle cues with {cfg.whisper}")
        entries: dict[int, dict[str, Any]] = {}
        for clip in clips:
            aligned = align_cues(cues or [], clip.timestamps, clip.start, clip.end)
            entries[clip.index] = {
                "index": clip.index,
                "start": clip.start,
                "end": clip.end,
                "frames": list(clip.frames),
                "subtitles": format_subtitles(aligned, clip.timestamps, header="Subtitles:"),
                "subtitle_plain": " ".join(cue.text for cue in aligned),
            }
        logger.info_rank0(f"long-qa: captioning {len(clips)} clips of {video} ({info.duration:.1f}s)")
        max_pixels = getattr(self._vlm, "video_max_pixels", None) if self._captioner is None else None
        batch: list[tuple[Clip, list[Any]]] = []
        progress = _progress(len(clips), cfg.progress)
        for clip, frames in iter_clip_frames(video, clips, max_pixels=max_pixels or 640 * 480):
            batch.append((clip, frames))
            if len(batch) == cfg.batch_size:
                self._caption_batch(batch, entries, progress)
                batch = []
        if batch:
            self._caption_batch(batch, entries, progress)
        progress.close()
        index = {
            "version": INDEX_VERSION,
            "video": _file_id(video),
            "settings": settings,
            "duration": info.duration,
            "fps": info.fps,
            "cues": [asdict(cue) for cue in cues or []],
            "clips": [entries[i] for i in sorted(entries)],
            "cache": {},
        }
        _write_index(path, index)
        logger.info_rank0(f"long-qa: index written: {path}")
        return index, path, False

    def _caption_batch(self, batch, entries, progress) -> None:
        captions = self._caption([c for c, _ in batch], [f for _, f in batch])
        for (clip, _), caption in zip(batch, captions):
            entries[clip.index]["caption"] = " ".join(str(caption).split())
        self.captioned_clips += len(batch)
        progress.update(len(batch))

    # ------------------------------------------------------------------------------------------------ ask

    def retrieve(self, index: dict[str, Any], question: str, path: str | None = None) -> list[dict[str, Any]]:
        r"""The top-k clips for ``question`` with their scores (best first)."""
        retriever = self.retriever()
        cache = index.setdefault("cache", {})
        before = json.dumps(cache, sort_keys=True)
        ranked = retriever.rank(question, [clip_document(c) for c in index["clips"]], cache, top_k=self.config.top_k)
        if path and json.dumps(cache, sort_keys=True) != before:
            _write_index(path, index)
        return [{**index["clips"][i], "score": score, "rank": r + 1} for r, (i, score) in enumerate(ranked)]

    def answer_prompt(self, question: str, clips: Sequence[dict[str, Any]]) -> str:
        parts = []
        for n, clip in enumerate(sorted(clips, key=lambda c: c["start"]), start=1):
            text = f"Clip {n} ({hms(clip['start'])}-{hms(clip['end'])}): <video>\nCaption: {clip.get('caption', '')}"
            if clip.get("subtitles"):
                text += "\n" + clip["subtitles"]
            parts.append(text)
        return "\n\n".join(parts) + f"\n\n{ANSWER_INSTRUCTIONS}\nQuestion: {question}"

    def ask(self, video: str, question: str) -> dict[str, Any]:
        index, path, reused = self.build_index(video)
        retrieved = self.retrieve(index, question, path)
        in_order = sorted(retrieved, key=lambda c: c["start"])
        fps = index.get("fps") or probe_video(video).fps
        clips = [Clip(c["index"], c["start"], c["end"], tuple(c["frames"]), fps) for c in in_order]
        frames = {clip.index: f for clip, f in iter_clip_frames(video, clips, max_pixels=640 * 480)}
        prompt = self.answer_prompt(question, in_order)
        answer = self._answer(prompt, [frames[c["index"]] for c in in_order])
        return {
            "question": question,
            "answer": answer,
            "video": os.path.abspath(video),
            "clips": [
                {k: c[k] for k in ("rank", "index", "start", "end", "score", "caption", "subtitle_plain")}
                for c in retrieved
            ],
            "retriever": self.retriever().name,
            "index": path,
            "index_reused": reused,
            "captioned_clips": self.captioned_clips,
        }


def _write_index(path: str, index: dict[str, Any]) -> None:
    from ..convert.common import write_json

    write_json(path, index)


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc="captioning clips", unit="clip")


def format_result(result: dict[str, Any]) -> str:
    r"""The human-readable answer with the clips used."""
    lines = [result["answer"] or "(empty answer)", "", f"clips used ({result['retriever']}, best first):"]
    for clip in result["clips"]:
        lines.append(
            f"  #{clip['rank']} {hms(clip['start'])}-{hms(clip['end'])}  score {clip['score']:.3f}  "
            f"{(clip.get('caption') or '')[:80]}"
        )
    lines.append(f"index: {result['index']} ({'reused' if result['index_reused'] else 'built'})")
    return "\n".join(lines)
