r"""Qwen3-VL video placeholders (host/qwen3_vl.py) against transformers' own ``Qwen3VLProcessor``.

The reference is the real processor expanding ``<|vision_start|><|video_pad|><|vision_end|>`` for the same decoded
frames and metadata: our expansion of a LlamaFactory sample must give the very same token ids (per video: one
``<t seconds>`` group per temporal slot, ``H*W/merge**2`` video tokens per slot, that video's own timestamps).
LlamaFactory 0.9.5's code (the innermost ``process_messages.__wrapped__``) gets both cases wrong: two videos of
different lengths in one message, and a video in the second user turn.
"""

import inspect
import os
import re

import pytest


VIDEOS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "..", "shared")
SHORT = os.path.normpath(os.path.join(VIDEOS, "data", "videos", "4.mp4"))  # 5.0 s, 30 fps
LONG = os.path.normpath(os.path.join(VIDEOS, "data", "videos", "1.mp4"))  # 9.7 s, 25 fps


@pytest.fixture(scope="module")
def processor():
    from llamafactory_video.testing.tiny_families import build_tiny_qwen3_vl_processor
    from llamafactory_video.testing.tiny_model import build_tiny_tokenizer

    proc = build_tiny_qwen3_vl_processor(build_tiny_tokenizer())
    # what LlamaFactory's load_tokenizer sets from the model arguments (video_fps / video_maxlen / video_max_pixels)
    proc.video_fps, proc.video_maxlen = 1.0, 16
    proc.video_max_pixels, proc.video_min_pixels = 64 * 64, 16 * 16
    return proc


@pytest.fixture(scope="module")
def plugin():
    from llamafactory.data.template import TEMPLATES

    return TEMPLATES["qwen3_vl"].mm_plugin


def _reference_ids(plugin, processor, text: str, videos: list[str]) -> list[int]:
    r"""Token ids of ``text`` (one ``<|vision_start|><|video_pad|><|vision_end|>`` per video) expanded by the
    real ``Qwen3VLProcessor`` on the frames the host decodes, with the host's metadata."""
    data = plugin._regularize_videos(
        videos,
        image_max_pixels=processor.video_max_pixels,
        image_min_pixels=processor.video_min_pixels,
        video_fps=processor.video_fps,
        video_maxlen=processor.video_maxlen,
    )
    metadata = [
        {"fps": processor.video_fps, "duration": d, "total_num_frames": len(v), "frames_indices": idx}
        for v, d, idx in zip(data["videos"], data["durations"], data["frames_indices"])
    ]
    out = processor(
        text=[text], videos=data["videos"], video_metadata=metadata, fps=processor.video_fps, do_sample_frames=False
    )
    return [int(i) for i in out["input_ids"][0]]


def _groups(messages) -> list[tuple[float, int]]:
    r"""``(seconds, video tokens)`` of each ``<t seconds><|vision_start|><|video_pad|>...<|vision_end|>`` group."""
    pattern = r"<(\d+\.\d) seconds><\|vision_start\|>((?:<\|video_pad\|>)+)<\|vision_end\|>"
    return [
        (float(t), pads.count("<|video_pad|>")) for m in messages for t, pads in re.findall(pattern, m["content"])
    ]


def _grids(plugin, processor, videos):
    return [tuple(int(x) for x in g) for g in plugin._get_mm_inputs([], videos, [], processor)["video_grid_thw"]]


CASES = {
    # two videos of different lengths in one message, the short one first (stock: the long one gets 3 slots)
    "two_videos_one_message": (
        [{"role": "user", "content": "<video><video>What happens?"}, {"role": "assistant", "content": "A dog."}],
        [SHORT, LONG],
    ),
    # a video in the second user turn (stock: video_metadata[2] with one video -> IndexError)
    "video_in_second_turn": (
        [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "<video>What happens?"},
            {"role": "assistant", "content": "A dog."},
        ],
        [LONG],
    ),
    # both at once: a long video in the first turn, a short one in the third message
    "one_video_per_turn": (
        [
            {"role": "user", "content": "<video>What happens?"},
            {"role": "assistant", "content": "A dog."},
            {"role": "user", "content": "And <video> here?"},
            {"role": "assistant", "content": "A cat."},
        ],
        [LONG, SHORT],
    ),
}


def _expected(plugin, processor, messages, videos):
    placeholder = "<|vision_start|><|video_pad|><|vision_end|>"
    ids = []
    for message in messages:
        text = message["content"].replace("<video>", placeholder)
        n = message["content"].count("<video>")
        used, videos = videos[:n], videos[n:]
        ids.append(_reference_ids(plugin, processor, text, used) if n else processor.tokenizer(text)["input_ids"])
    return ids


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_video_expands_as_the_processor_does(plugin, processor, case):
    messages, videos = CASES[case]
    grids = _grids(plugin, processor, videos)
    assert len({g[0] for g in grids}) == len(grids)  # the videos really differ in length (5 vs 3 slots)

    out = plugin.process_messages(messages, [], videos, [], processor)
    got = [processor.tokenizer(m["content"])["input_ids"] for m in out]
    assert got == _expected(plugin, processor, messages, videos)
    merge = processor.video_processor.merge_size ** 2
    groups = _groups(out)
    assert len(groups) == sum(t for t, _, _ in grids)  # one timestamp group per temporal slot of each video
    for t, h, w in grids:  # each video's own slot count, tokens per slot (the model's features) and time axis
        mine, groups = groups[:t], groups[t:]
        assert [n for _, n in mine] == [h * w // merge] * t
        assert [s for s, _ in mine] == sorted(s for s, _ in mine) and mine[0][0] < 1.0


@pytest.mark.parametrize("case", sorted(CASES))
def test_stock_0_9_5_gets_these_samples_wrong(plugin, processor, case):
    r"""Contract: the host's own code is still wrong on these samples. When this fails, LlamaFactory fixed it and
    host/qwen3_vl.py can go."""
    messages, videos = CASES[case]
    stock = inspect.unwrap(type(plugin).process_messages)
    try:
        out = stock(plugin, messages, [], videos, [], processor)
    except IndexError:
        return
    got = [processor.tokenizer(m["content"])["input_ids"] for m in out]
    assert got != _expected(plugin, processor, messages, videos)


def test_images_and_unexpanded_tokens_keep_the_host_code(plugin, processor):
    from dataclasses import replace

    messages = [{"role": "user", "content": "<video><video>What happens?"}]
    lazy = replace(plugin, expand_mm_tokens=False)
    out = lazy.process_messages(messages, [], [SHORT, LONG], [], processor)
    assert out == inspect.unwrap(type(lazy).process_messages)(lazy, messages, [], [SHORT, LONG], [], processor)
    assert plugin.process_messages([{"role": "user", "content": "Hi"}], [], [], [], processor) == [
        {"role": "user", "content": "Hi"}
    ]
