"""The frame cache (``video_frame_cache``): a hit gives the host's output bit for bit without decoding; changed,
corrupt or unwritable entries degrade to decoding (one warning); ``llamafactory-video cache-frames`` fills it."""

import logging
import os
import time

import numpy as np
import pytest

from llamafactory_video.data import frame_cache
from llamafactory_video.testing.codec_videos import write_codec_video


KW = {"image_max_pixels": 32 * 32, "image_min_pixels": 16 * 16, "video_fps": 3.0, "video_maxlen": 16}


@pytest.fixture()
def video(tmp_path):
    return write_codec_video(str(tmp_path / "v.mp4"), "h264_bframes_mp4", num_frames=40, fps=10, gop=10)


def _plugin(name="qwen2_vl"):
    from llamafactory.data.mm_plugin import get_mm_plugin

    return get_mm_plugin(name, image_token="<image>", video_token="<video>")


def _same(a, b):
    assert set(a) == set(b)
    for key in a:
        if key == "videos":
            assert [[f.tobytes() for f in v] for v in a[key]] == [[f.tobytes() for f in v] for v in b[key]]
            assert [[(f.size, f.mode) for f in v] for v in a[key]] == [[(f.size, f.mode) for f in v] for v in b[key]]
        else:
            assert [np.asarray(v).tolist() for v in a[key]] == [np.asarray(v).tolist() for v in b[key]], key


def _count_decoding(monkeypatch):
    r"""A list that grows by one for every video the frame sampler decodes."""
    from llamafactory_video.data import frame_sampler

    calls = []
    original = frame_sampler.read_frames_from

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(frame_sampler, "read_frames_from", counted)
    monkeypatch.setenv("LLAMAFACTORY_VIDEO_BACKEND", "pyav")
    return calls


@pytest.mark.parametrize("family", ["qwen2_vl", "base", "gemma4"])
def test_hit_equals_the_hosts_output_without_decoding(video, tmp_path, monkeypatch, family):
    plugin = _plugin(family)
    monkeypatch.setenv("LLAMAFACTORY_VIDEO_BACKEND", "host")
    monkeypatch.delenv(frame_cache.ENV, raising=False)
    host = plugin._regularize_videos([video, video], **KW)
    monkeypatch.setenv(frame_cache.ENV, str(tmp_path / "cache"))
    first = plugin._regularize_videos([video, video], **KW)  # miss: decodes, stores
    _same(first, host)
    entries = [f for _, _, files in os.walk(tmp_path / "cache") for f in files]
    assert len(entries) == 1 and entries[0].endswith(".npz")
    calls = _count_decoding(monkeypatch)
    _same(plugin._regularize_videos([video, video], **KW), host)
    assert calls == []
    plugin._regularize_videos([video], **{**KW, "video_maxlen": 8})  # other settings: another entry
    assert calls == [1]


def test_changed_or_corrupt_entries_are_decoded_again(video, tmp_path, monkeypatch):
    plugin = _plugin()
    monkeypatch.setenv(frame_cache.ENV, str(tmp_path / "cache"))
    first = plugin._regularize_videos([video], **KW)
    (entry,) = [os.path.join(d, f) for d, _, files in os.walk(tmp_path / "cache") for f in files]
    with open(entry, "r+b") as handle:  # truncated entry
        handle.truncate(os.path.getsize(entry) // 2)
    _same(plugin._regularize_videos([video], **KW), first)
    assert np.load(entry, allow_pickle=False)["frames"].shape[0] == len(first["videos"][0])  # rewritten
    # a changed source: new content, new mtime -> new frames, not the cached ones
    write_codec_video(video, "h264_mp4", num_frames=40, fps=10, gop=10, seed=7)
    os.utime(video, ns=(time.time_ns(), time.time_ns() + 10**9))
    monkeypatch.setenv("LLAMAFACTORY_VIDEO_BACKEND", "host")
    changed = plugin._regularize_videos([video], **KW)
    assert changed["videos"][0][0].tobytes() != first["videos"][0][0].tobytes()
    monkeypatch.delenv(frame_cache.ENV)
    _same(changed, plugin._regularize_videos([video], **KW))


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.parametrize("failure", ["not_a_directory", "disk_full"])
def test_an_unwritable_cache_warns_once_and_decodes(video, tmp_path, monkeypatch, failure):
    plugin = _plugin()
    other = write_codec_video(str(tmp_path / "w.mp4"), "h264_mp4", num_frames=20, fps=10, gop=5)
    if failure == "not_a_directory":
        blocker = tmp_path / "cache"
        blocker.write_text("a file where the cache directory should be")
        monkeypatch.setenv(frame_cache.ENV, str(blocker / "sub"))
    else:
        monkeypatch.setenv(frame_cache.ENV, str(tmp_path / "cache"))

        def full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(np, "savez", full)
    monkeypatch.setitem(frame_cache._STATE, "write_warned", False)
    monkeypatch.setitem(frame_cache._STATE, "writes_disabled", False)
    handler = _Collect()
    logger = logging.getLogger("llamafactory.video.data.frame_cache")
    logger.addHandler(handler)
    try:
        out = plugin._regularize_videos([video, other, video], **KW)
        out2 = plugin._regularize_videos([other], **KW)
    finally:
        logger.removeHandler(handler)
    assert len(out["videos"]) == 3 and len(out2["videos"][0]) == len(out["videos"][1])
    warnings = [r for r in handler.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot be written" in warnings[0].getMessage()
    assert not [f for _, _, files in os.walk(tmp_path) for f in files if f.startswith(".tmp-")]


def test_cache_frames_fills_the_cache_training_reads(tmp_path, monkeypatch, capsys):
    from llamafactory_video.cli import main
    from llamafactory_video.testing.synthetic_videos import make_action_dataset

    info = make_action_dataset(tmp_path / "data", num_classes=2, train_per_class=2, test_per_class=1, num_frames=6)
    cache = tmp_path / "cache"
    code = main([
        "cache-frames", "--dataset", info["train_dataset"], "--dataset-dir", str(tmp_path / "data"),
        "--template", "qwen2_vl", "--cache-dir", str(cache), "--workers", "2", "--no-progress",
        "--video-max-pixels", str(32 * 32), "--video-min-pixels", str(16 * 16),
    ])
    assert code == 0, capsys.readouterr()
    assert "4 of 4 videos cached" in capsys.readouterr().out
    from llamafactory.data.template import TEMPLATES

    plugin = TEMPLATES["qwen2_vl"].mm_plugin
    videos = sorted(os.path.join(tmp_path / "data", "videos", f) for f in os.listdir(tmp_path / "data" / "videos")
                    if "train" in f)
    monkeypatch.setenv(frame_cache.ENV, str(cache))
    calls = _count_decoding(monkeypatch)
    kwargs = {"image_max_pixels": 32 * 32, "image_min_pixels": 16 * 16, "video_fps": 2.0, "video_maxlen": 128}
    hit = plugin._regularize_videos(videos, **kwargs)
    assert calls == []
    monkeypatch.undo()
    monkeypatch.delenv(frame_cache.ENV, raising=False)
    _same(hit, plugin._regularize_videos(videos, **kwargs))


def test_entries_are_per_plugin_class(video, tmp_path, monkeypatch):
    r"""Plugins that inherit one ``_regularize_videos`` may still resize differently (their own
    ``_preprocess_image``): each class gets its own entry."""
    monkeypatch.setenv(frame_cache.ENV, str(tmp_path / "cache"))
    for family in ("qwen2_vl", "qwen3_vl", "base", "llava_next_video"):
        _plugin(family)._regularize_videos([video], **KW)
    assert len([f for _, _, files in os.walk(tmp_path / "cache") for f in files]) == 4
