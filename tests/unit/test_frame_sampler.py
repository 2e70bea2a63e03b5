"""Our frame sampler (``video_backend: pyav``) against the host's decode-everything loop (``video_backend: host``):
same frame indices, bit-identical frames and identical metadata, for every family's ``_regularize_videos``, across
codecs (h264 mp4, h264 with B-frames, mpeg4 avi, vp9 webm, variable frame rate mkv) and fps / maxlen cases."""

import os

import numpy as np
import pytest

from llamafactory_video.data.frame_sampler import FrameTable, NotSeekable, frame_table, plan_seeks, read_frames_pyav
from llamafactory_video.testing.codec_videos import KINDS, suffix, write_codec_video


# (video_fps, video_maxlen): every frame, sparse, the maxlen cap, one frame, more wanted than the file has
CASES = ((2.0, 128), (1.0, 3), (10.0, 128), (0.1, 128), (20.0, 128), (3.0, 7))
FAMILIES = ("base", "qwen2_vl", "gemma4")  # the three `_regularize_videos` of the host; the others inherit one


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("codecs")
    out = {}
    for kind in KINDS:
        out[kind] = write_codec_video(str(folder / f"{kind}{suffix(kind)}"), kind, num_frames=60, fps=10, gop=10)
    out["long_gop"] = write_codec_video(str(folder / "long_gop.mp4"), "h264_bframes_mp4", num_frames=90, gop=45)
    return out


def _plugin(name):
    from llamafactory.data.mm_plugin import get_mm_plugin

    return get_mm_plugin(name, image_token="<image>", video_token="<video>")


def _regularize(plugin, path, backend, monkeypatch, fps, maxlen):
    monkeypatch.setenv("LLAMAFACTORY_VIDEO_BACKEND", backend)
    monkeypatch.delenv("LLAMAFACTORY_VIDEO_FRAME_CACHE", raising=False)
    return plugin._regularize_videos(
        [path], image_max_pixels=32 * 32, image_min_pixels=16 * 16, video_fps=fps, video_maxlen=maxlen
    )


def _host_frames(path):
    import av

    with av.open(path) as container:
        return [frame.to_image() for frame in container.decode(container.streams.video[0])]


def test_the_sampler_is_installed_in_the_host():
    from llamafactory.data import mm_plugin

    from llamafactory_video.host.frame_reader import _AvProxy

    assert isinstance(mm_plugin.av, _AvProxy)
    assert getattr(mm_plugin.MMPluginMixin._get_video_sample_indices, "__wrapped__", None) is not None
    for cls in (mm_plugin.MMPluginMixin, mm_plugin.Qwen2VLPlugin, mm_plugin.Gemma4Plugin):
        assert getattr(vars(cls)["_regularize_videos"], "__frame_cache__", None) is not None


def test_contract_the_hosts_video_reading_loop_is_what_the_proxy_expects():
    r"""host/frame_reader.py relies on: only these classes define ``_regularize_videos`` and only the mixin
    ``_get_video_sample_indices``; each reads a file with ``av.open(video, "r")``, the sample indices of the same
    stream, ``container.seek(0)`` and ``enumerate(container.decode(video_stream))`` keeping ``frame.to_image()``
    of the sampled numbers. A new host version that changes this must be reviewed before the proxy is trusted."""
    import inspect

    from llamafactory.data import mm_plugin

    owners = sorted(
        name for name, value in vars(mm_plugin).items()
        if isinstance(value, type) and "_regularize_videos" in vars(value)
    )
    assert owners == ["Gemma4Plugin", "MMPluginMixin", "Qwen2VLPlugin"]
    assert [
        name for name, value in vars(mm_plugin).items()
        if isinstance(value, type) and "_get_video_sample_indices" in vars(value)
    ] == ["MMPluginMixin"]
    for name in owners:
        function = vars(getattr(mm_plugin, name))["_regularize_videos"]
        while hasattr(function, "__frame_cache__") or hasattr(function, "__wrapped__"):  # our wrappers
            function = getattr(function, "__frame_cache__", None) or function.__wrapped__
        source = inspect.getsource(function)
        for expected in (
            'container = av.open(video, "r")',
            "sample_indices = self._get_video_sample_indices(video_stream, **kwargs)",
            "container.seek(0)",
            "for frame_idx, frame in enumerate(container.decode(video_stream)):",
            "if frame_idx in sample_indices:",
            "frames.append(frame.to_image())",
        ):
            assert expected in source, (name, expected)
    # the cache key: the keywords the host passes to _regularize_videos for videos
    source = inspect.getsource(mm_plugin.MMPluginMixin._get_mm_inputs)
    for keyword in ("image_max_pixels=", "image_min_pixels=", "video_fps=", "video_maxlen="):
        assert keyword in source


@pytest.mark.parametrize("kind", KINDS + ("long_gop",))
def test_frame_table_matches_the_decoder_and_every_frame_is_bit_identical(videos, kind):
    import av

    path = videos[kind]
    host = _host_frames(path)
    with av.open(path) as container:
        table = frame_table(container, container.streams.video[0])
    assert len(table) == len(host)  # frame i of the table is frame i of the host's loop
    for wanted in ([0], [len(host) - 1], list(range(0, len(host), 7)), [3, 4, 13, 14, 40, 41], list(range(len(host)))):
        for threads in (1, 2):
            got = read_frames_pyav(path, wanted + [len(host), len(host) + 5], threads=threads)
            assert sorted(got) == sorted(set(wanted)), (kind, wanted)
            for index in wanted:
                assert got[index].tobytes() == host[index].tobytes(), (kind, index, threads)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_family_gets_the_hosts_indices_frames_and_metadata(videos, kind, family, monkeypatch):
    plugin = _plugin(family)
    for fps, maxlen in CASES:
        host = _regularize(plugin, videos[kind], "host", monkeypatch, fps, maxlen)
        ours = _regularize(plugin, videos[kind], "pyav", monkeypatch, fps, maxlen)
        assert set(ours) == set(host)
        for key in host:
            if key != "videos":
                assert [np.asarray(v).tolist() for v in ours[key]] == [np.asarray(v).tolist() for v in host[key]]
        assert len(ours["videos"][0]) == len(host["videos"][0]) > 0, (kind, fps, maxlen)
        for a, b in zip(ours["videos"][0], host["videos"][0]):
            assert a.size == b.size and a.mode == b.mode and a.tobytes() == b.tobytes(), (kind, family, fps, maxlen)


def test_the_plugin_path_really_seeks(videos, monkeypatch):
    r"""Sparse sampling of a long-GOP file decodes only the keyframe groups of the wanted frames."""
    from llamafactory_video.data import frame_sampler

    calls = []
    original = frame_sampler.read_frames_from

    def spy(container, stream, indices, threads=None):
        out = original(container, stream, indices, threads)
        calls.append((list(indices), sorted(out)))
        return out

    monkeypatch.setattr(frame_sampler, "read_frames_from", spy)
    _regularize(_plugin("qwen2_vl"), videos["h264_mp4"], "pyav", monkeypatch, 1.0, 3)
    assert calls == [([0, 29, 59], [0, 29, 59])]  # the host's indices, and no fallback to decoding everything


def test_plan_seeks_seeks_only_when_it_skips_enough_frames():
    table = FrameTable(pts=tuple(range(0, 400, 10)), keyframe_pts=(0, 100, 200, 300))
    plan = plan_seeks(table, [1, 2, 4, 12, 13, 25, 38, 39, 45], min_gap=5)
    # 30 (the keyframe of 38) is only 5 frames past 25: decode on
    assert plan == [(1, 0), (2, None), (4, None), (12, 100), (13, None), (25, 200), (38, None), (39, None)]
    assert plan_seeks(table, [8, 12], min_gap=5) == [(8, 0), (12, None)]  # 10 is 2 frames past 8: decode on
    assert plan_seeks(table, [8, 12], min_gap=1) == [(8, 0), (12, 100)]
    assert plan_seeks(table, []) == []


def test_a_file_the_sampler_cannot_index_falls_back_to_the_host(tmp_path, monkeypatch):
    from llamafactory_video.data import frame_sampler

    path = write_codec_video(str(tmp_path / "v.mp4"), "h264_mp4", num_frames=30, fps=10, gop=10)

    def refuse(container, stream):
        raise NotSeekable("test")

    monkeypatch.setattr(frame_sampler, "frame_table", refuse)
    plugin = _plugin("qwen2_vl")
    ours = _regularize(plugin, path, "pyav", monkeypatch, 2.0, 128)
    host = _regularize(plugin, path, "host", monkeypatch, 2.0, 128)
    assert [f.tobytes() for f in ours["videos"][0]] == [f.tobytes() for f in host["videos"][0]]


def test_broken_videos_fail_naming_the_file_with_either_backend(tmp_path, monkeypatch):
    r"""Cut-short and empty files: the sampler raises the host's error (naming the file) wherever the host does,
    and returns the host's frames wherever the host returns frames (a cut AVI whose index still lists frames:
    the pre-training probe stops that one, ``tests/unit/test_video_probe.py``)."""
    from llamafactory_video.data.video_probe import VideoDecodeError
    from llamafactory_video.testing.broken_videos import write_broken_set

    paths = write_broken_set(str(tmp_path), num_frames=32, fps=8, fraction=0.3)
    plugin = _plugin("qwen2_vl")
    raised = 0
    for key, path in paths.items():
        outcomes = []
        for backend in ("host", "pyav"):
            try:
                out = _regularize(plugin, path, backend, monkeypatch, 2.0, 128)
                outcomes.append([f.tobytes() for f in out["videos"][0]])
            except VideoDecodeError as err:
                assert os.path.basename(path) in str(err)
                outcomes.append(type(err))
        assert outcomes[0] == outcomes[1], key
        raised += outcomes[0] is VideoDecodeError
    assert raised >= 5  # cut mp4 / faststart / webm / mkv and the empty file


def test_video_backend_is_a_checked_model_key(monkeypatch):
    import importlib.util

    from llamafactory_video.hparams import VideoModelArguments

    with pytest.raises(ValueError, match="video_backend"):
        VideoModelArguments(model_name_or_path="x", video_backend="ffmpeg")
    assert VideoModelArguments(model_name_or_path="x").video_backend == "pyav"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "decord" else real_find_spec(name, *a)
    )
    with pytest.raises(ValueError, match="needs the decord package"):
        VideoModelArguments(model_name_or_path="x", video_backend="decord")


@pytest.mark.parametrize("kind", KINDS)
def test_decord_backend_gives_the_hosts_frames(videos, kind, monkeypatch):
    r"""Runs where decord is installed (``pip install decord``): the host's indices read with ``get_batch``; on
    these files its frames are the host's bit for bit."""
    pytest.importorskip("decord")
    plugin = _plugin("qwen2_vl")
    for fps, maxlen in CASES:
        host = _regularize(plugin, videos[kind], "host", monkeypatch, fps, maxlen)
        ours = _regularize(plugin, videos[kind], "decord", monkeypatch, fps, maxlen)
        assert [f.tobytes() for f in ours["videos"][0]] == [f.tobytes() for f in host["videos"][0]], (kind, fps)
        assert ours["frames_indices"] == host["frames_indices"] and ours["fps_per_video"] == host["fps_per_video"]
