"""Contract tests of host/hilight.py: what it assumes about LlamaFactory 0.9.5 and transformers, checked against
the installed host (see tests/unit/test_host_contract.py for the other patches)."""

import inspect
from types import SimpleNamespace


def test_bootstrap_hooks_the_template_module():
    from llamafactory_video._bootstrap import HOOKED_MODULES
    from llamafactory_video.host.patches import PATCHES

    assert "llamafactory.data.template" in HOOKED_MODULES and "llamafactory.data.template" in PATCHES


def test_transformers_auto_classes_serve_the_stock_loader():
    from llamafactory.model import loader
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor  # noqa: F401
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    from llamafactory_video.model.hilight import HiLightConfig, HiLightForConditionalGeneration, HiLightProcessor

    # load_model picks AutoModelForImageTextToText when the config type is in its mapping
    assert "AutoModelForImageTextToText._model_mapping.keys()" in inspect.getsource(loader.load_model)
    assert AutoModelForImageTextToText._model_mapping[HiLightConfig] is HiLightForConditionalGeneration
    assert type(AutoConfig.for_model("hilight")) is HiLightConfig
    assert PROCESSOR_MAPPING[HiLightConfig] is HiLightProcessor
    # load_tokenizer drops a processor whose class name lacks "Processor"
    assert '"Processor" not in processor.__class__.__name__' in inspect.getsource(loader.load_tokenizer)


def test_composite_keys_drive_the_freeze_flags():
    import llamafactory.model.loader  # noqa: F401 - registers
    from llamafactory.hparams import FinetuningArguments
    from llamafactory.model.model_utils.visual import (
        COMPOSITE_MODELS,
        _register_composite_model,
        get_forbidden_modules,
    )

    params = inspect.signature(_register_composite_model).parameters
    assert {"projector_keys", "vision_model_keys", "language_model_keys"} <= set(params)
    fields = {f for f in FinetuningArguments.__dataclass_fields__}
    assert {
        "freeze_vision_tower",
        "freeze_multi_modal_projector",
        "freeze_language_model",
        "additional_target",
    } <= fields
    entry = COMPOSITE_MODELS["hilight"]
    assert entry.projector_keys == ["token_mining"]
    assert entry.vision_model_keys == ["video_tower", "frame_tower"]
    assert entry.language_model_keys == ["language_model"]
    config = SimpleNamespace(model_type="hilight")
    stage1 = SimpleNamespace(freeze_vision_tower=True, freeze_multi_modal_projector=False, freeze_language_model=True)
    assert get_forbidden_modules(config, stage1) == {"video_tower", "frame_tower", "language_model"}
    stage2 = SimpleNamespace(freeze_vision_tower=True, freeze_multi_modal_projector=True, freeze_language_model=False)
    assert get_forbidden_modules(config, stage2) == {"video_tower", "frame_tower", "token_mining"}


def test_templates_and_plugin_are_registered_on_the_host_classes():
    from llamafactory.data import collator, mm_plugin, template

    from llamafactory_video.model.hilight import HILIGHT_VIDEO_TOKEN

    params = inspect.signature(template.register_template).parameters
    assert {"mm_plugin", "template_class", "format_prefix", "stop_words", "replace_eos"} <= set(params)
    for name in ("hilight", "hilight_qwen"):
        plugin = template.TEMPLATES[name].mm_plugin
        assert type(plugin).__name__ == "HiLightPlugin" and plugin.video_token == HILIGHT_VIDEO_TOKEN
        assert plugin.image_token is None  # the collator then injects no fake image
    assert isinstance(template.TEMPLATES["hilight"], template.Llama2Template)
    assert mm_plugin.PLUGINS["hilight"].__name__ == "HiLightPlugin"
    assert issubclass(mm_plugin.PLUGINS["hilight"], mm_plugin.BasePlugin)
    # our plugin reads frames through the host's (patched) _regularize_videos, not a copy of it
    assert "_regularize_videos" not in vars(mm_plugin.PLUGINS["hilight"])
    for method in ("_regularize_videos", "_validate_input", "_validate_messages", "get_mm_inputs"):
        assert hasattr(mm_plugin.BasePlugin, method), method
    source = inspect.getsource(collator.MultiModalDataCollatorForSeq2Seq.__call__)
    assert "self.template.mm_plugin.image_token is not None and sum(batch_imglens) == 0" in source
