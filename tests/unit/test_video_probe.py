"""The decodability probe every stage runs before training (data/video_probe.py) and the training-time guard."""

import os
import re

import pytest

from llamafactory_video.data import video_probe
from llamafactory_video.data.video_probe import (
    VideoDecodeError,
    check_sample_videos,
    clear_memory_cache,
    probe_video,
    probe_videos,
)
from llamafactory_video.testing.broken_videos import cut_file, write_broken_set


CONTAINERS = ("faststart", "mp4", "avi", "webm", "mkv")


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    return write_broken_set(str(tmp_path_factory.mktemp("broken")))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMAFACTORY_VIDEO_CACHE", str(tmp_path / "cache"))
    clear_memory_cache()
    yield
    clear_memory_cache()


def _sampler(video_fps=2.0, video_maxlen=128):
    from llamafactory_video.host.video import host_sampler

    return host_sampler(video_fps, video_maxlen)


@pytest.mark.parametrize("key", CONTAINERS)
def test_whole_files_pass(broken, key):
    assert probe_video(broken[key])["ok"], probe_video(broken[key])
    assert probe_video(broken[key], sampler=_sampler())["ok"]


@pytest.mark.parametrize("key", CONTAINERS)
def test_cut_files_fail_in_every_container(broken, key):
    for sampler in (None, _sampler()):
        info = probe_video(broken[f"cut_{key}"], sampler=sampler)
        assert not info["ok"] and info["kind"] == "undecodable_video", info
    # the faststart mp4 still opens and declares all 48 frames: only decoding finds it
    if key == "faststart":
        assert "decoding fails after" in info["reason"] and "InvalidDataError" in info["reason"]
    if key in ("avi", "webm", "mkv"):  # these end quietly: only the frame count finds them
        assert "cut short: only" in info["reason"]


def test_empty_and_missing(broken, tmp_path):
    assert probe_video(broken["empty"])["kind"] == "empty_video"
    assert probe_video(str(tmp_path / "nowhere.mp4"))["kind"] == "missing_video"


def test_only_frames_the_host_samples_are_required(broken):
    # a webm declares no frame count: the host takes its first `video_maxlen` frames, which a 30 % cut still holds
    assert probe_video(broken["cut_webm"], sampler=_sampler(video_maxlen=8))["ok"]
    assert not probe_video(broken["cut_webm"], sampler=_sampler(video_maxlen=32))["ok"]


def test_probe_is_cached_per_file_in_memory_and_on_disk(broken, tmp_path, monkeypatch):
    calls = []
    real = video_probe._decode
    monkeypatch.setattr(video_probe, "_decode", lambda path, n: calls.append(path) or real(path, n))
    path = cut_file(broken["avi"], str(tmp_path / "copy.avi"), 1.0)
    results = probe_videos([path, path, path], workers=2, progress=False)
    assert results[path]["ok"] and len(calls) == 1
    probe_video(path, sampler=_sampler())  # another run's keys reuse the decoded facts
    assert len(calls) == 1
    clear_memory_cache()  # a later run: the on-disk entry is reused
    assert probe_video(path)["ok"] and len(calls) == 1
    assert os.listdir(tmp_path / "cache" / "video_probe")
    cut_file(broken["avi"], path, 0.3)  # the file changes: probed again
    assert not probe_video(path)["ok"] and len(calls) == 2


def test_read_only_cache_falls_back_to_memory(broken, monkeypatch, tmp_path):
    monkeypatch.setenv("LLAMAFACTORY_VIDEO_CACHE", "/proc/no-such-dir")
    assert probe_video(broken["mp4"])["ok"]


def test_check_sample_videos_names_file_sample_and_video(broken):
    rows = [("a.json", 0, [broken["mp4"]]), ("a.json", 1, [broken["cut_faststart"]]), ("b.json", 7, [broken["empty"]])]
    with pytest.raises(VideoDecodeError) as err:
        check_sample_videos(rows, _sampler(), "train")
    message = str(err.value)
    assert "2 of 3 train samples" in message
    assert f"dataset `a.json` sample 1: video {broken['cut_faststart']}: decoding fails" in message
    assert f"dataset `b.json` sample 7: video {broken['empty']}: empty file" in message
    assert check_sample_videos(rows, _sampler(), "train", mode="skip") == {1, 2}


def _host_regularize(videos, **kwargs):
    from llamafactory.data.mm_plugin import get_mm_plugin

    plugin = get_mm_plugin("qwen2_vl", image_token="<|image_pad|>", video_token="<|video_pad|>")
    args = dict(image_max_pixels=64 * 64, image_min_pixels=16, video_fps=2.0, video_maxlen=128)
    args.update(kwargs)
    return plugin._regularize_videos(videos, **args)


@pytest.mark.parametrize("key", ("cut_faststart", "cut_avi"))
def test_training_time_decoding_names_file_and_sample(broken, key):
    video_probe.remember_samples([("train.json", 5, [broken[key]])])
    assert len(_host_regularize([broken["mp4"]])["videos"][0]) > 0
    with pytest.raises(VideoDecodeError) as err:
        _host_regularize([broken["mp4"], broken[key]])
    message = str(err.value)
    assert broken[key] in message and "dataset `train.json` sample 5" in message
    if key == "cut_avi":  # the stock loop ends quietly with fewer frames than it sampled
        assert re.search(r"only \d+ frames decoded, but training needs \d+ \(LlamaFactory samples", message)
