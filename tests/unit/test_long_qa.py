"""Long-video QA parts: BM25 against hand-computed scores, the embedding retriever, clip slicing, the index
(built once, reused without captioning, invalidated by a changed video) with an injected captioner."""

import math
import os

import numpy as np
import pytest

from llamafactory_video.tools.long_qa.clips import make_clips, slice_spans
from llamafactory_video.tools.long_qa.pipeline import LongQAConfig, LongVideoQA, index_path
from llamafactory_video.tools.long_qa.retrieval import BM25, BM25Retriever, EmbeddingRetriever, tokenize


def test_tokenize_drops_stopwords():
    assert tokenize("What is the RED square doing, at 10s?") == ["red", "square", "doing", "10s"]


def test_bm25_hand_computed():
    docs = [["red", "square"], ["blue", "circle", "circle"], ["red", "circle", "moves", "left"]]
    bm25 = BM25(docs, k1=1.5, b=0.75)
    avgdl = 3.0
    idf_red = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))
    idf_circle = idf_red
    idf_blue = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))

    def term(idf, tf, dl):
        return idf * tf * 2.5 / (tf + 1.5 * (1 - 0.75 + 0.75 * dl / avgdl))

    expected = [
        term(idf_red, 1, 2),
        term(idf_blue, 1, 3) + term(idf_circle, 2, 3),
        term(idf_red, 1, 4) + term(idf_circle, 1, 4),
    ]
    got = bm25.scores(["red", "blue", "circle", "red"])  # the repeated query term counts once
    assert got == pytest.approx(expected, rel=1e-12)
    # numbers written out: idf(red) = ln(1.6) = 0.470004, idf(blue) = ln(8/3) = 0.980829
    assert got[0] == pytest.approx(0.470004 * 2.5 / (1 + 1.5 * 0.75), rel=1e-5)
    ranked = BM25Retriever().rank("blue circle", [" ".join(d) for d in docs])
    assert [i for i, _ in ranked] == [1, 2, 0] and ranked[-1][1] == 0.0


class BagOfWords:
    r"""A deterministic stand-in encoder (one dimension per vocabulary word) with a call counter."""

    vocab = ("red", "blue", "green", "square", "circle", "moves", "left", "right")

    def __init__(self):
        self.encoded = 0

    def encode_texts(self, texts):
        import torch

        self.encoded += len(texts)
        return torch.tensor([[float(w in tokenize(t)) for w in self.vocab] for t in texts])


def test_embedding_retriever_caches_document_embeddings():
    encoder = BagOfWords()
    retriever = EmbeddingRetriever(encoder, "bow")
    docs = ["a red square moves right", "a blue circle moves left", "green square"]
    cache = {}
    top = retriever.rank("blue circle", docs, cache, top_k=2)
    assert len(top) == 2 and top[0][0] == 1
    ranked = retriever.rank("which circle is blue", docs, cache)
    assert ranked[0][0] == 1 and ranked[0][1] == pytest.approx(2 / math.sqrt(4 * 2))
    assert encoder.encoded == 3 + 2  # documents once, then only the two questions
    assert "embeddings:bow" in cache


def test_mean_pooling_encoder_on_tiny_bert(tmp_path):
    from llamafactory_video.testing.tiny_aux_models import build_tiny_embedder
    from llamafactory_video.tools.long_qa.retrieval import MeanPoolingEncoder

    path = build_tiny_embedder(str(tmp_path / "bert"))
    encoder = MeanPoolingEncoder(path)
    vectors = encoder.encode_texts(["a red square", "a blue circle moves left", "a red square"])
    assert vectors.shape[0] == 3 and np.allclose(vectors.norm(dim=-1).numpy(), 1.0, atol=1e-5)
    assert np.allclose(vectors[0].numpy(), vectors[2].numpy(), atol=1e-6)  # padding does not change the embedding
    ranked = EmbeddingRetriever.from_path(path).rank("a red square", ["a blue circle moves left", "a red square"])
    assert ranked[0][0] == 1 and ranked[0][1] == pytest.approx(1.0, abs=1e-5)


def test_slice_spans():
    assert slice_spans(100, 30, 0) == [(0, 30), (30, 60), (60, 90), (90, 100)]
    assert slice_spans(100, 30, 10) == [(0, 30), (20, 50), (40, 70), (60, 90), (80, 100)]
    assert slice_spans(62, 30, 0) == [(0, 30), (30, 62)]  # a 2 s remainder joins the last clip
    assert slice_spans(10, 30, 5) == [(0, 10)]
    with pytest.raises(ValueError, match="--overlap"):
        slice_spans(10, 5, 5)


def test_make_clips_sample_like_the_host():
    from llamafactory_video.data.subtitles import VideoInfo, sample_indices

    clips = make_clips(VideoInfo(total_frames=96, duration=24.0, fps=4.0), clip_seconds=8, overlap=0, video_fps=1.0)
    assert [(c.start, c.end) for c in clips] == [(0, 8), (8, 16), (16, 24)]
    assert list(clips[1].frames) == [32 + i for i in sample_indices(32, 8.0, 1.0, 128)]
    assert clips[2].frames[-1] == 95 and clips[1].timestamps[0] == 8.0


def _video(path, seconds=12, fps=4):
    from llamafactory_video.testing.synthetic_videos import write_video

    frames = np.zeros((seconds * fps, 32, 32, 3), dtype=np.uint8)
    for t in range(len(frames)):
        frames[t, :, :, t // (4 * fps) % 3] = 200  # red, green, blue segments of 4 s
    write_video(frames, path, fps=fps)
    return path


def test_index_built_once_and_reused(tmp_path):
    video = _video(str(tmp_path / "long.mp4"))
    colours = ["red", "green", "blue"]
    seen = []

    def captioner(clips, frames):
        seen.extend(c.index for c in clips)
        out = []
        for clip_frames in frames:
            r, g, b = np.asarray(clip_frames[0]).reshape(-1, 3).mean(0)
            out.append(f"the screen is {colours[int(np.argmax([r, g, b]))]}")
        return out

    def answerer(prompt, videos):
        return f"{len(videos)} clips"

    config = LongQAConfig(model="unused", clip_seconds=4, video_fps=1.0, top_k=1, batch_size=2, progress=False)
    qa = LongVideoQA(config, captioner=captioner, answerer=answerer)
    result = qa.ask(video, "When is the screen green?")
    assert seen == [0, 1, 2] and qa.captioned_clips == 3 and not result["index_reused"]
    assert result["clips"][0]["index"] == 1 and (result["clips"][0]["start"], result["clips"][0]["end"]) == (4, 8)
    assert result["answer"] == "1 clips"
    again = LongVideoQA(config, captioner=captioner, answerer=answerer).ask(video, "blue screen?")
    assert again["index_reused"] and seen == [0, 1, 2] and again["clips"][0]["index"] == 2
    assert again["index"] == result["index"]
    # other settings or a changed file: another index
    assert index_path(video, {**config.index_settings(), "clip_seconds": 6}) != result["index"]
    os.utime(video, ns=(1, 1))
    assert index_path(video, {**config.index_settings(), "subtitles": None}) != result["index"]
