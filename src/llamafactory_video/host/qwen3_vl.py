"""Qwen3-VL video placeholders in the host: ``Qwen3VLPlugin.process_messages`` expanded per video.

LlamaFactory 0.9.5's ``Qwen3VLPlugin.process_messages`` expands every ``<video>`` with

* the temporal slot count of the *first* video of the sample (``num_frames = video_grid_thw[0][0]``, "hard code
  for now"), so a second video of another length gets too few or too many ``<t seconds><|vision_start|>...``
  groups (a token / feature mismatch in the model, or silently wrong positions);
* ``video_metadata[idx]`` where ``idx`` is the index of the *message*, not of the video: two videos in one message
  share the first one's timestamps, and a video in a later user turn reads another video's metadata or raises
  ``IndexError``.

:func:`patch_qwen3_vl_plugin` replaces it by an expansion that walks the videos in order, each with its own grid
and metadata, exactly as ``transformers``' ``Qwen3VLProcessor.__call__`` expands a video (timestamps averaged over
each temporal patch of ``temporal_patch_size`` frames). Images, ``expand_mm_tokens: false`` and samples without
videos keep the host's code. Stock ``sft`` on Qwen3-VL gets the fix as well as the plugin stages
(``tests/unit/test_qwen3_vl_placeholders.py`` shows the stock bug and the fix against the processor).
"""

from __future__ import annotations

from copy import deepcopy
from types import ModuleType
from typing import Any, Optional, Sequence


def video_timestamps(processor: Any, metadata: Any) -> list[float]:
    r"""Seconds of each temporal slot of one video: ``Qwen3VLProcessor._calculate_timestamps`` over the video's
    ``frames_indices`` / ``fps``, averaged over ``temporal_patch_size`` frames (as the processor does)."""
    video_processor = processor.video_processor
    fps = getattr(metadata, "fps", None)
    fps = 24 if fps is None else fps  # the processor's own fallback
    return processor._calculate_timestamps(
        list(metadata.frames_indices), fps, int(getattr(video_processor, "temporal_patch_size", 2))
    )


def video_structure(
    plugin: Any, processor: Any, grid_thw: Sequence[int], metadata: Any, tokens_per_slot: Optional[int] = None
) -> str:
    r"""The text one ``<video>`` becomes: per temporal slot ``<t seconds><|vision_start|><|video_pad|> x n
    <|vision_end|>``.

    Args:
        grid_thw: ``(T, H, W)`` of this video in patches (``video_grid_thw[k]``).
        metadata: this video's metadata (``frames_indices``, ``fps``).
        tokens_per_slot: video tokens per slot; default ``H * W / merge_size**2`` (the unpooled count).
    """
    t, h, w = (int(x) for x in grid_thw)
    merge = int(processor.video_processor.merge_size)
    per_slot = h * w // merge**2 if tokens_per_slot is None else int(tokens_per_slot)
    timestamps = video_timestamps(processor, metadata)
    if len(timestamps) < t:
        raise ValueError(
            f"Qwen3-VL video with {t} temporal slots has timestamps for {len(timestamps)} only "
            f"(frames_indices={list(metadata.frames_indices)})."
        )
    frame = f"{plugin.vision_bos_token}{plugin.video_token * per_slot}{plugin.vision_eos_token}"
    return "".join(f"<{timestamps[i]:.1f} seconds>{frame}" for i in range(t))


def expand_messages(module: ModuleType, plugin: Any, messages, images, videos, audios, processor):
    r"""``Qwen3VLPlugin.process_messages`` with each video expanded from its own grid and metadata."""
    plugin._validate_input(processor, images, videos, audios)
    plugin._validate_messages(messages, images, videos, audios)
    mm_inputs = plugin._get_mm_token_metadata(images, videos, audios, processor)
    if mm_inputs is None:
        mm_inputs = plugin._get_mm_inputs(images, videos, audios, processor)
    image_grid_thw = mm_inputs.get("image_grid_thw", [])
    video_grid_thw = mm_inputs["video_grid_thw"]
    video_metadata = mm_inputs["video_metadata"]
    if len(video_grid_thw) != len(videos) or len(video_metadata) != len(videos):
        raise ValueError(
            f"Qwen3-VL: {len(videos)} videos but {len(video_grid_thw)} grids / {len(video_metadata)} metadata."
        )
    image_merge = int(processor.image_processor.merge_size) ** 2

    messages = deepcopy(messages)
    num_images = num_videos = 0
    for message in messages:
        content = message["content"]
        while module.IMAGE_PLACEHOLDER in content:
            seqlen = int(image_grid_thw[num_images].prod()) // image_merge
            content = content.replace(
                module.IMAGE_PLACEHOLDER,
                f"{plugin.vision_bos_token}{plugin.image_token * seqlen}{plugin.vision_eos_token}",
                1,
            )
            num_images += 1
        while module.VIDEO_PLACEHOLDER in content:
            grid = [int(x) for x in video_grid_thw[num_videos]]
            structure = video_structure(plugin, processor, grid, video_metadata[num_videos])
            content = content.replace(module.VIDEO_PLACEHOLDER, structure, 1)
            num_videos += 1
        message["content"] = content
    return messages


def patch_qwen3_vl_plugin(module: ModuleType) -> None:
    r"""Wrap ``module.Qwen3VLPlugin.process_messages`` (``module`` is ``llamafactory.data.mm_plugin``)."""
    plugin_cls = getattr(module, "Qwen3VLPlugin", None)
    if plugin_cls is None or "process_messages" not in vars(plugin_cls):
        return
    original = vars(plugin_cls)["process_messages"]
    if getattr(original, "__wrapped__", None) is not None:
        return

    def process_messages(self, messages, images, videos, audios, processor):
        if len(videos) == 0 or not self.expand_mm_tokens or processor is None:
            return original(self, messages, images, videos, audios, processor)
        return expand_messages(module, self, messages, images, videos, audios, processor)

    process_messages.__wrapped__ = original
    plugin_cls.process_messages = process_messages
