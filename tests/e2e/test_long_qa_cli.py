"""``llamafactory-video long-qa`` end to end on the tiny Qwen2-VL: a 16 s synthetic video of 4 segments (red
square right, green circle left, blue triangle up, yellow diamond down) with a sidecar .srt describing each
segment (controlled text: the random model's captions are noise). BM25 ranks the segment that answers first;
a second question reuses the index without captioning, and a second process with --embedder reuses it too."""

import json
import os
import subprocess

from llamafactory_video.testing.synthetic_qa import make_long_video
from llamafactory_video.testing.tiny_aux_models import build_tiny_embedder

from .helpers import BIN, offline_env


def _long_qa(model, video, index_dir, *extra):
    cmd = [os.path.join(BIN, "llamafactory-video"), "long-qa", "--model", model, "--template", "qwen2_vl"]
    cmd += ["--video", video, "--clip-seconds", "4", "--video-fps", "1", "--video-maxlen", "4", "--top-k", "2"]
    cmd += ["--batch-size", "2", "--max-new-tokens", "6", "--answer-max-new-tokens", "6", "--index-dir", index_dir]
    proc = subprocess.run([*cmd, *extra, "--json"], env=offline_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.stderr


def test_long_qa_retrieves_the_segment_and_reuses_the_index(tiny_qwen2vl, tmp_path):
    video = str(tmp_path / "long.mp4")
    segments = make_long_video(video, segments=4, seconds_per_segment=4.0, fps=4)
    index_dir = str(tmp_path / "index")
    results, log = _long_qa(
        tiny_qwen2vl,
        video,
        index_dir,
        "--question",
        "Where does the blue triangle go?",
        "--question",
        "yellow diamond?",
    )
    first, second = results
    assert [c["start"] for c in first["clips"]][0] == segments[2]["start"] == 8.0
    assert first["clips"][0]["subtitle_plain"] == segments[2]["text"]
    assert first["clips"][0]["score"] > first["clips"][1]["score"]
    assert isinstance(first["answer"], str) and first["retriever"] == "bm25"
    assert not first["index_reused"] and first["captioned_clips"] == 4
    assert "captioning 4 clips" in log and "captioning clips: 100%" in log  # progress bar
    index = json.load(open(first["index"], encoding="utf-8"))
    assert [(c["start"], c["end"]) for c in index["clips"]] == [(0, 4), (4, 8), (8, 12), (12, 16)]
    assert all(isinstance(c["caption"], str) for c in index["clips"])
    assert second["index_reused"] and second["captioned_clips"] == 4  # nothing more captioned
    assert second["clips"][0]["start"] == 12.0 and "index reused" in log

    embedder = build_tiny_embedder(str(tmp_path / "embedder"))
    third, log = _long_qa(tiny_qwen2vl, video, index_dir, "--question", "green circle", "--embedder", embedder)
    assert third["index_reused"] and third["captioned_clips"] == 0 and "captioning 4 clips" not in log
    assert third["retriever"] == "embedding" and len(third["clips"]) == 2
    cache = json.load(open(third["index"], encoding="utf-8"))["cache"]
    assert [k for k in cache if k.startswith("embeddings:hf-")] and len(next(iter(cache.values()))) == 4
