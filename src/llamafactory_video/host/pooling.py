"""Video token pooling in the host: the mm_plugins' placeholder count and the model loader.

* ``process_messages`` of each mm_plugin class a family names (``Qwen2VLPlugin``, ``Qwen3VLPlugin``, ...): when
  the processor carries a :class:`VideoPooling`, each ``<video>`` expands into the pooled number of placeholder
  tokens, as the family writes them (the host's own expansion otherwise, untouched); their ``get_mm_inputs``
  drops the keys the family's model does not take (``VideoFamily.processor_only_keys``).
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
    r"""Wrap ``process_messages`` of every mm_plugin class a family of the layer names
    (``VideoFamily.mm_plugins``, each class that defines its own); pooled samples are expanded by the family."""
    from ..model.families import FAMILIES

    names = {name: family for family in FAMILIES.values() for name in family.mm_plugins}
    for name, family in names.items():
        plugin_cls = getattr(module, name, None)
        if plugin_cls is None:
            continue
        if "process_messages" in vars(plugin_cls):
            _wrap_process_messages(module, plugin_cls)
        if family.processor_only_keys:
            _drop_processor_only_keys(plugin_cls, family.processor_only_keys)


def _drop_processor_only_keys(plugin_cls: type, keys: tuple[str, ...]) -> None:
    r"""``get_mm_inputs`` without the keys the family's processor emits but its model does not take (Qwen3-VL's
    ``video_metadata``: stock 0.9.5 passes it into the batch, and ``generate`` refuses unknown kwargs, so stock
    ``sft`` ``predict_with_generate`` on a Qwen3-VL video dataset fails)."""
    original = plugin_cls.get_mm_inputs

    def get_mm_inputs(self, *args, **kwargs):
        mm_inputs = original(self, *args, **kwargs)
        for key in keys:
            mm_inputs.pop(key, None)
        return mm_inputs

    get_mm_inputs.__wrapped__ = original
    plugin_cls.get_mm_inputs = get_mm_inputs


def _wrap_process_messages(module: ModuleType, plugin_cls: type) -> None:
    original = plugin_cls.process_messages

    def process_messages(self, messages, images, videos, audios, processor):
        from ..model.families import FAMILIES, supported_families
        from ..model.video_pooling import processor_pooling

        pooling = processor_pooling(processor) if processor is not None else None
        if pooling is None or len(videos) == 0 or not self.expand_mm_tokens:
            return original(self, messages, images, videos, audios, processor)
        family = next((f for f in FAMILIES.values() if type(self).__name__ in f.mm_plugins), None)
        if family is None or not family.supports("video_token_pool_stride"):
            raise ValueError(
                f"video token pooling supports the families {supported_families('video_token_pool_stride')}; the "
                f"template's plugin is {type(self).__name__}. Remove `video_token_pool_stride` / use stage sft "
                "without pooling."
            )
        return _pooled_process_messages(module, family, self, messages, images, videos, audios, processor, pooling)

    process_messages.__wrapped__ = original
    plugin_cls.process_messages = process_messages


def _pooled_process_messages(module, family, plugin, messages, images, videos, audios, processor, pooling):
    plugin._validate_input(processor, images, videos, audios)
    plugin._validate_messages(messages, images, videos, audios)
    merge = family.merge_size(processor)
    mm_inputs = plugin._get_mm_token_metadata(images, videos, audios, processor)
    if mm_inputs is None:
        mm_inputs = plugin._get_mm_inputs(images, videos, audios, processor)
    video_grid_thw = mm_inputs["video_grid_thw"]
    video_counts = family.placeholder_counts(video_grid_thw, merge, pooling)
    first = video_grid_thw[0].tolist()
    stock = first[0] * first[1] * first[2] // merge**2
    _log_once(
        "first-video",
        f"video token pooling {pooling.describe()}: first video {first[0]} slots of {first[1] // merge}x"
        f"{first[2] // merge} (HxW) tokens -> {video_counts[0]} video tokens instead of {stock} "
        f"({stock / max(video_counts[0], 1):.1f}x fewer).",
    )
    return family.expand_pooled_videos(plugin, module, messages, mm_inputs, processor, pooling)


def patch_model_loader(module: ModuleType) -> None:
    original_tokenizer = module.load_tokenizer
    original_model = module.load_model

    def load_tokenizer(model_args):
        from ..model.video_pooling import attach_to_processor, merged_side, pooling_from_model_args

        tokenizer_module = original_tokenizer(model_args)
        pooling, source = pooling_from_model_args(model_args)
        if pooling is not None:
            from ..model.families import require

            # refused here, before the model loads, when the model's family cannot pool
            require("video_token_pool_stride", model_or_config=module.load_config(model_args))
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
