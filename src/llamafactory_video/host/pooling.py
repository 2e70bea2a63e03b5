"""Video token pooling in the host: the ``qwen2_vl`` mm_plugin's placeholder count and the model loader.

* ``Qwen2VLPlugin.process_messages``: when the processor carries a :class:`VideoPooling`, each ``<video>`` expands
  into the pooled number of ``<|video_pad|>`` tokens (the host's own expansion otherwise, untouched).
* ``load_tokenizer`` / ``load_model``: the model key ``video_token_pool_stride`` or a saved ``video_pooling.json``
  (adapter or model directory) applies pooling to the processor and to the model, so every stage, the chat
  engine, the API and ``do_predict`` see the same tokens. The ``fastslow_ar`` workflow applies its own keys.
"""

from types import ModuleType


_LOGGED: set[str] = set()


def _log_once(key: str, message: str) -> None:
    if key in _LOGGED:
        return
    _LOGGED.add(key)
    from .._logging import get_logger

    get_logger("llamafactory_video.pooling").info_rank0(message)


def patch_mm_plugin(module: ModuleType) -> None:
    plugin_cls = module.Qwen2VLPlugin
    original = plugin_cls.process_messages

    def process_messages(self, messages, images, videos, audios, processor):
        from ..model.video_pooling import processor_pooling

        pooling = processor_pooling(processor) if processor is not None else None
        if pooling is None or len(videos) == 0 or not self.expand_mm_tokens:
            return original(self, messages, images, videos, audios, processor)
        if type(self) is not plugin_cls:
            raise ValueError(
                f"video token pooling supports the `qwen2_vl` template (Qwen2-VL, Qwen2.5-VL); the template's "
                f"plugin is {type(self).__name__}. Remove `video_token_pool_stride` / use stage sft without pooling."
            )
        return _pooled_process_messages(module, self, messages, images, videos, audios, processor, pooling)

    process_messages.__wrapped__ = original
    plugin_cls.process_messages = process_messages


def _pooled_process_messages(module, plugin, messages, images, videos, audios, processor, pooling):
    from copy import deepcopy

    plugin._validate_input(processor, images, videos, audios)
    plugin._validate_messages(messages, images, videos, audios)
    merge = int(processor.image_processor.merge_size)
    mm_inputs = plugin._get_mm_token_metadata(images, videos, audios, processor)
    if mm_inputs is None:
        mm_inputs = plugin._get_mm_inputs(images, videos, audios, processor)
    image_grid_thw = mm_inputs.get("image_grid_thw", [])
    video_grid_thw = mm_inputs["video_grid_thw"]
    video_counts = pooling.placeholder_counts(video_grid_thw, merge)
    first = video_grid_thw[0].tolist()
    stock = first[0] * first[1] * first[2] // merge**2
    _log_once(
        "first-video",
        f"video token pooling {pooling.describe()}: first video {first[0]} slots of {first[1] // merge}x"
        f"{first[2] // merge} (HxW) tokens -> {video_counts[0]} video tokens instead of {stock} "
        f"({stock / max(video_counts[0], 1):.1f}x fewer).",
    )

    messages = deepcopy(messages)
    num_images = num_videos = 0
    for message in messages:
        content = message["content"]
        while module.IMAGE_PLACEHOLDER in content:
            seqlen = int(image_grid_thw[num_images].prod()) // merge**2
            content = content.replace(
                module.IMAGE_PLACEHOLDER,
                f"{plugin.vision_bos_token}{plugin.image_token * seqlen}{plugin.vision_eos_token}",
                1,
            )
            num_images += 1
        while module.VIDEO_PLACEHOLDER in content:
            seqlen = video_counts[num_videos]
            content = content.replace(
                module.VIDEO_PLACEHOLDER,
                f"{plugin.vision_bos_token}{plugin.video_token * seqlen}{plugin.vision_eos_token}",
                1,
            )
            num_videos += 1
        message["content"] = content
    return messages


def patch_model_loader(module: ModuleType) -> None:
    original_tokenizer = module.load_tokenizer
    original_model = module.load_model

    def load_tokenizer(model_args):
        from ..model.video_pooling import attach_to_processor, merged_side, pooling_from_model_args

        tokenizer_module = original_tokenizer(model_args)
        pooling, source = pooling_from_model_args(model_args)
        if pooling is not None:
            attach_to_processor(tokenizer_module.get("processor"), pooling)
            side = merged_side(tokenizer_module.get("processor"))
            maxlen = getattr(model_args, "video_maxlen", None)
            _log_once("tokenizer", f"{pooling.saving_line(side, video_maxlen=maxlen)} (from {source}).")
        return tokenizer_module

    def load_model(tokenizer, model_args, finetuning_args, is_trainable=False, add_valuehead=False):
        from ..model.video_pooling import install_on_model, pooling_from_model_args

        model = original_model(tokenizer, model_args, finetuning_args, is_trainable, add_valuehead)
        if getattr(finetuning_args, "stage", None) == "fastslow_ar":
            return model  # the stage's workflow installs its own slow/fast pooling
        pooling, _ = pooling_from_model_args(model_args)
        if pooling is not None:
            install_on_model(model, pooling)
        return model

    load_tokenizer.__wrapped__ = original_tokenizer
    load_model.__wrapped__ = original_model
    module.load_tokenizer = load_tokenizer
    module.load_model = load_model
