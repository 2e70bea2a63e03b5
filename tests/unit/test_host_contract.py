"""Contract tests: every assumption host/ makes about LlamaFactory, checked against the installed host.

When one of these fails after a LlamaFactory upgrade, the matching patch in src/llamafactory_video/host/
must be revisited before anything else.
"""

import ast
import dataclasses
import inspect
import os
import subprocess
import sys
import textwrap
import typing

import pytest


def test_stage_is_a_closed_literal_and_parser_lists_are_swapped():
    from llamafactory.hparams import parser
    from llamafactory.hparams.finetuning_args import FinetuningArguments

    from llamafactory_video.hparams import VideoFinetuningArguments, VideoGeneratingArguments

    host_stages = typing.get_args(typing.get_type_hints(FinetuningArguments)["stage"])
    assert {"pt", "sft", "rm", "ppo", "dpo", "kto"} <= set(host_stages)
    for name in ("_TRAIN_ARGS", "_INFER_ARGS", "_EVAL_ARGS"):
        classes = getattr(parser, name)
        assert VideoFinetuningArguments in classes and FinetuningArguments not in classes, name
    assert VideoGeneratingArguments in parser._TRAIN_ARGS and VideoGeneratingArguments in parser._INFER_ARGS
    from llamafactory_video.hparams import VideoModelArguments

    for name in ("_TRAIN_ARGS", "_INFER_ARGS", "_EVAL_ARGS"):
        assert VideoModelArguments in getattr(parser, name), name
    assert len(parser._TRAIN_ARGS) == 5


def test_generation_keys_reach_generate_only_when_set():
    from llamafactory_video.hparams import VideoGeneratingArguments

    stock = VideoGeneratingArguments().to_dict(obey_generation_config=True)
    assert "min_new_tokens" not in stock and "no_repeat_ngram_size" not in stock
    seed = VideoGeneratingArguments(min_new_tokens=6, no_repeat_ngram_size=3).to_dict(obey_generation_config=True)
    assert seed["min_new_tokens"] == 6 and seed["no_repeat_ngram_size"] == 3


def test_plugin_field_names_are_unique_across_the_five_dataclasses():
    from llamafactory.hparams import parser

    from llamafactory.hparams.generating_args import GeneratingArguments

    from llamafactory.hparams.model_args import ModelArguments

    from llamafactory_video.hparams import STAGE_ARGUMENT_CLASSES, VideoGeneratingArguments, VideoModelArguments

    ours = {f.name for mixin in STAGE_ARGUMENT_CLASSES.values() for f in dataclasses.fields(mixin)}
    for mine, host in ((VideoGeneratingArguments, GeneratingArguments), (VideoModelArguments, ModelArguments)):
        ours |= {f.name for f in dataclasses.fields(mine)} - {f.name for f in dataclasses.fields(host)}
    for cls in parser._TRAIN_ARGS:
        if cls.__name__ in ("VideoFinetuningArguments", "VideoGeneratingArguments", "VideoModelArguments"):
            continue
        clash = ours & {f.name for f in dataclasses.fields(cls)}
        assert not clash, f"{cls.__name__} now defines {clash}"


def test_training_function_callbacks_match_ours():
    from llamafactory.train import tuner

    from llamafactory_video.host.tuner import HOST_CALLBACKS

    original = tuner._training_function.__wrapped__
    tree = ast.parse(textwrap.dedent(inspect.getsource(original)))
    appended = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "append"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "callbacks"
            and isinstance(node.args[0], ast.Call)
        ):
            func = node.args[0].func
            appended.add(func.id if isinstance(func, ast.Name) else func.attr)
    assert appended == set(HOST_CALLBACKS)
    assert "Unknown task" in inspect.getsource(original)
    for name in HOST_CALLBACKS:
        assert name == "EarlyStoppingCallback" or hasattr(tuner, name), name


def test_loader_signatures_we_wrap():
    from llamafactory.data import converter, loader

    def params(func):
        return list(inspect.signature(func.__wrapped__).parameters)

    assert params(loader._get_merged_dataset) == [
        "dataset_names",
        "model_args",
        "data_args",
        "training_args",
        "stage",
        "return_dict",
    ]
    assert params(loader._get_dataset_processor) == [
        "data_args",
        "stage",
        "template",
        "tokenizer",
        "processor",
        "do_generate",
    ]
    assert params(loader.align_dataset) == ["dataset", "dataset_attr", "data_args", "training_args"]
    assert "get_dataset_converter" in dir(converter)
    source = inspect.getsource(loader._get_preprocessed_dataset)
    assert "remove_columns=column_names" in source  # why the processor must re-emit our columns


def test_pooling_patch_points():
    r"""What host/pooling.py and model/video_pooling.py rely on in LlamaFactory and transformers."""
    from llamafactory.data import mm_plugin
    from llamafactory.hparams.model_args import ModelArguments
    from llamafactory.model import loader
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel
    from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VLModel

    plugin = mm_plugin.Qwen2VLPlugin
    assert list(inspect.signature(plugin.process_messages.__wrapped__).parameters) == [
        "self",
        "messages",
        "images",
        "videos",
        "audios",
        "processor",
    ]
    for name in ("_validate_input", "_validate_messages", "_get_mm_token_metadata", "_get_mm_inputs"):
        assert callable(getattr(plugin, name)), name
    stock = inspect.getsource(plugin.process_messages.__wrapped__)
    assert "video_grid_thw[num_video_tokens].prod() // merge_length" in stock  # the line our expansion replaces
    assert mm_plugin.PLUGINS["qwen2_vl"] is plugin
    assert list(inspect.signature(loader.load_tokenizer.__wrapped__).parameters) == ["model_args"]
    assert list(inspect.signature(loader.load_model.__wrapped__).parameters) == [
        "tokenizer",
        "model_args",
        "finetuning_args",
        "is_trainable",
        "add_valuehead",
    ]
    assert "cls(**init_args)" in inspect.getsource(ModelArguments.copyfrom.__wrapped__)
    for cls in (Qwen2VLModel, Qwen2_5_VLModel):
        forward = inspect.getsource(cls.forward)
        assert "self.get_video_features(pixel_values_videos, video_grid_thw).pooler_output" in forward
        assert "self.get_rope_index(" in inspect.getsource(cls.compute_3d_position_ids)
        params = list(inspect.signature(cls.get_rope_index).parameters)
        assert params[:5] == ["self", "input_ids", "mm_token_type_ids", "image_grid_thw", "video_grid_thw"]


def test_qwen3_vl_placeholder_patch_points():
    r"""What host/qwen3_vl.py relies on in LlamaFactory's Qwen3VLPlugin and transformers' Qwen3VLProcessor."""
    from llamafactory.data import mm_plugin
    from transformers import Qwen3VLProcessor

    plugin = mm_plugin.Qwen3VLPlugin
    assert mm_plugin.PLUGINS["qwen3_vl"] is plugin and issubclass(plugin, mm_plugin.Qwen2VLPlugin)
    stock_code = inspect.unwrap(vars(plugin)["process_messages"])
    assert stock_code.__qualname__ == "Qwen3VLPlugin.process_messages"
    assert list(inspect.signature(stock_code).parameters) == [
        "self",
        "messages",
        "images",
        "videos",
        "audios",
        "processor",
    ]
    stock = inspect.getsource(stock_code)
    assert "video_metadata[idx]" in stock and "video_grid_thw[0][0]" in stock  # the two lines our expansion replaces
    for name in ("_validate_input", "_validate_messages", "_get_mm_token_metadata", "_get_mm_inputs"):
        assert callable(getattr(plugin, name)), name
    assert "video_metadata" in inspect.getsource(plugin._get_video_token_metadata)
    assert list(inspect.signature(Qwen3VLProcessor._calculate_timestamps).parameters) == [
        "self",
        "indices",
        "video_fps",
        "merge_size",
    ]
    call = inspect.getsource(Qwen3VLProcessor.__call__)
    assert "self.video_processor.temporal_patch_size" in call and "video_grid_thw[index][1:].prod()" in call


def test_llava_next_video_patch_points():
    r"""What host/llava_next_video.py relies on: the host still calls the video processor with ``images=None``,
    which transformers 5.6's LLaVA-NeXT-Video video processor rejects."""
    import numpy as np
    from llamafactory.data import mm_plugin
    from transformers import LlavaNextVideoVideoProcessor

    plugin = mm_plugin.LlavaNextVideoPlugin
    assert mm_plugin.PLUGINS["llava_next_video"] is plugin
    wrapped = plugin._get_mm_inputs
    assert "_get_mm_inputs" in vars(plugin) and wrapped.__wrapped__ is mm_plugin.BasePlugin._get_mm_inputs
    stock = inspect.getsource(mm_plugin.BasePlugin._get_mm_inputs)
    assert "video_processor(images=None, videos=videos" in stock
    assert "videos" in inspect.signature(LlavaNextVideoVideoProcessor.preprocess).parameters
    messages = inspect.unwrap(vars(plugin)["process_messages"])
    assert messages.__qualname__ == "LlavaNextVideoPlugin.process_messages"
    source = inspect.getsource(messages)
    assert "num_frames = one_video.shape[0]" in source  # every video of a sample gets the first one's frames
    assert "image_seqlen // 4 * num_frames" in source  # our per-video count keeps this per-frame formula
    with pytest.raises(TypeError, match="images"):
        LlavaNextVideoVideoProcessor()(images=None, videos=[[np.zeros((28, 28, 3), "uint8")] * 2])


def test_dataset_attr_reads_extra_columns_and_label_names():
    from llamafactory.data.parser import DatasetAttr

    attr = DatasetAttr("file", dataset_name="x.json")
    attr.join(
        {"formatting": "sharegpt", "columns": {"messages": "messages", "action_label": "cls"}, "label_names": "l.json"}
    )
    assert attr.messages == "messages" and attr.extra_columns == {"action_label": "cls"}
    assert attr.label_names == "l.json"
    assert DatasetAttr("file", dataset_name="y").extra_columns is None


def test_dataset_processor_and_collator_contracts():
    from llamafactory.data.collator import MultiModalDataCollatorForSeq2Seq
    from llamafactory.data.processor.processor_utils import DatasetProcessor

    assert [f.name for f in dataclasses.fields(DatasetProcessor)] == [
        "template",
        "tokenizer",
        "processor",
        "data_args",
    ]
    source = inspect.getsource(MultiModalDataCollatorForSeq2Seq.__call__)
    for key in ('"images"', '"videos"', '"audios"'):
        assert f"feature.pop({key}" in source


def test_llamaboard_stage_table():
    from llamafactory.extras.constants import TRAINING_STAGES
    from llamafactory.webui.components import train as train_tab

    from llamafactory_video.registry import STAGES

    assert train_tab.TRAINING_STAGES is TRAINING_STAGES
    for spec in STAGES.values():
        assert TRAINING_STAGES[spec.label] == spec.name


def test_registry_lists_only_built_stages():
    from llamafactory_video.registry import STAGES

    assert set(STAGES) == {"action_cls", "scst", "sparc_align", "fastslow_ar"}
    for spec in STAGES.values():
        assert callable(spec.load_workflow())
        assert bool(spec.processor) != bool(spec.host_data_stage)  # exactly one way to process its data
        assert callable(spec.load_processor()) if spec.processor else spec.host_data_stage == "sft"
        assert os.path.isfile(os.path.join(os.path.dirname(__file__), "..", "..", spec.docs))


def test_disable_env_leaves_the_host_untouched():
    code = (
        "from llamafactory.extras.constants import TRAINING_STAGES; "
        "import llamafactory.train.tuner as t; "
        "print('action_cls' in TRAINING_STAGES.values(), hasattr(t._training_function, '__wrapped__'))"
    )
    env = dict(os.environ, LLAMAFACTORY_VIDEO_DISABLE="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env,
        capture_output=True, text=True, check=True, timeout=600
    )
    assert out.stdout.strip().splitlines()[-1] == "False False"
    env.pop("LLAMAFACTORY_VIDEO_DISABLE")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env,
        capture_output=True, text=True, check=True, timeout=600
    )
    assert out.stdout.strip().splitlines()[-1] == "True True"


def test_peek_stage():
    from llamafactory_video.host.tuner import peek_stage

    assert peek_stage({"stage": "action_cls"}) == "action_cls"
    assert peek_stage(["--model_name_or_path", "m", "--stage", "action_cls"]) == "action_cls"
    assert peek_stage(["--stage=sft"]) == "sft"
    assert peek_stage(["--do_train"]) is None and peek_stage(None) is None


def test_bad_keys_fail_with_what_to_do():
    from llamafactory.hparams import get_train_args

    base = dict(
        stage="action_cls", model_name_or_path="x", do_train=False, output_dir="/tmp/none", template="qwen2_vl"
    )
    with pytest.raises(ValueError, match="only applies to `action_decoder_type: mlp`"):
        get_train_args(dict(base, action_decoder_hidden_size=64))
    with pytest.raises(ValueError, match="at least 2"):
        get_train_args(dict(base, num_action_classes=1))
    with pytest.raises(ValueError, match=r"label_smoothing"):
        get_train_args(dict(base, action_label_smoothing=1.5))
    with pytest.raises(ValueError, match="not used by the HfArgumentParser|Some keys are not used"):
        get_train_args(dict(base, action_decoder_kind="mlp"))


def test_importing_the_plugin_before_the_host_still_patches():
    code = (
        "import llamafactory_video.hparams as ours; from llamafactory.hparams import parser; "
        "print(parser._TRAIN_ARGS[3] is ours.VideoFinetuningArguments)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_trainer_checkpoint_loading_we_replace():
    r"""What host/checkpoint.py relies on in transformers: save_pretrained writes the checkpoint with the weight
    conversions reverted; the stock resume and best-model paths read it back with a plain ``load_state_dict`` and only
    warn about missing keys; the conversion helpers we call keep their signatures. When transformers converts keys on
    resume itself (huggingface/transformers#48805), the patch can go."""
    import llamafactory.train.trainer_utils as host_trainer_utils
    from transformers import PreTrainedModel, Trainer
    from transformers import core_model_loading as cml
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.pytorch_utils import id_tensor_storage  # noqa: F401
    from transformers.trainer_utils import _is_peft_model  # noqa: F401
    from transformers.utils import is_sagemaker_mp_enabled  # noqa: F401
    from transformers.utils.import_utils import check_torch_load_is_safe  # noqa: F401

    assert host_trainer_utils.Trainer is Trainer  # the class the patch is installed on
    for name, params in (
        ("_load_from_checkpoint", ["self", "resume_from_checkpoint", "model"]),
        ("_load_best_model", ["self"]),
    ):
        patched = getattr(Trainer, name)
        stock = patched.__wrapped__
        assert list(inspect.signature(stock).parameters) == params == list(inspect.signature(patched).parameters)
        source = inspect.getsource(stock)
        assert "model.load_state_dict(state_dict, False)" in source, name  # no key conversion
        assert "load_sharded_checkpoint(" in source and "self._issue_warnings_after_load(load_result)" in source, name
    warn = inspect.getsource(Trainer._issue_warnings_after_load)
    assert "logger.warning" in warn and "raise" not in warn  # missing keys only warn
    train = inspect.getsource(Trainer._inner_training_loop) + inspect.getsource(Trainer.train)
    assert "self._load_from_checkpoint(resume_from_checkpoint)" in train
    assert "revert_weight_conversion(model_to_save, state_dict)" in inspect.getsource(PreTrainedModel.save_pretrained)
    assert "model._weight_conversions = " in inspect.getsource(cml)
    assert list(inspect.signature(cml.rename_source_key).parameters) == [
        "source_key",
        "weight_renamings",
        "weight_converters",
        "prefix",
        "meta_state_dict",
    ]
    for cls in (cml.WeightRenaming, cml.WeightConverter):
        assert list(inspect.signature(cls.add_tensor).parameters) == [
            "self",
            "target_key",
            "source_key",
            "source_pattern",
            "future",
        ]
        assert list(inspect.signature(cls.convert).parameters)[:4] == ["self", "layer_name", "model", "config"]
    assert "add_legacy" in inspect.signature(get_model_conversion_mapping).parameters
    assert callable(cml.dot_natural_key)


def test_disable_env_leaves_the_trainer_untouched():
    code = (
        "import llamafactory.train.trainer_utils; from transformers import Trainer; "
        "print(*(hasattr(getattr(Trainer, m), '__wrapped__') for m in ('_load_from_checkpoint', '_load_best_model')))"
    )
    env = dict(os.environ, LLAMAFACTORY_VIDEO_DISABLE="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env,
        capture_output=True, text=True, check=True, timeout=600
    )
    assert out.stdout.strip().splitlines()[-1] == "False False"
    env.pop("LLAMAFACTORY_VIDEO_DISABLE")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env,
        capture_output=True, text=True, check=True, timeout=600
    )
    assert out.stdout.strip().splitlines()[-1] == "True True"


def test_video_decoding_patch_points():
    r"""What host/video.py relies on: the host samples frames from `frames` / `duration` / `time_base` only, decodes
    the whole stream in `_regularize_videos` (so the probe decodes it all), and every such method is wrapped."""
    import av
    from llamafactory.data import mm_plugin

    from llamafactory_video.data.video_probe import decode_facts
    from llamafactory_video.host.video import host_sampler
    from llamafactory_video.testing.broken_videos import clip_frames
    from llamafactory_video.testing.synthetic_videos import write_video

    import tempfile

    samplers = [c for c in vars(mm_plugin).values() if isinstance(c, type) and "_get_video_sample_indices" in vars(c)]
    assert samplers == [mm_plugin.MMPluginMixin] and issubclass(mm_plugin.BasePlugin, mm_plugin.MMPluginMixin)
    with tempfile.TemporaryDirectory() as folder:
        for ext in ("mp4", "avi", "webm"):
            path = os.path.join(folder, f"v.{ext}")
            write_video(clip_frames(24), path, fps=8)
            with av.open(path) as container:
                stream = container.streams.video[0]
                stock = mm_plugin.BasePlugin._get_video_sample_indices(None, stream, video_fps=2.0, video_maxlen=16)
            assert list(stock) == host_sampler(2.0, 16)(decode_facts(path)), ext
    wrapped = [c for c in vars(mm_plugin).values() if isinstance(c, type) and "_regularize_videos" in vars(c)]
    assert mm_plugin.MMPluginMixin in wrapped and mm_plugin.Qwen2VLPlugin in wrapped
    for cls in wrapped:
        method = vars(cls)["_regularize_videos"]
        assert hasattr(method, "__wrapped__"), cls.__name__
        source = inspect.getsource(inspect.unwrap(method))  # through the frame-cache and decode-error wrappers
        assert "container.decode(video_stream)" in source and "break" not in source, cls.__name__


def test_get_train_args_refuses_auto_resuming_another_stages_checkpoint(tmp_path):
    r"""host/resume.py wraps ``get_train_args`` (what tuner.py calls for every stage) after the host's auto-resume
    (``get_last_checkpoint`` of ``output_dir`` when ``overwrite_output_dir`` is false) has set
    ``resume_from_checkpoint``."""
    import json

    from llamafactory.hparams import get_train_args, parser
    from llamafactory.train import tuner

    assert tuner.get_train_args is parser.get_train_args is get_train_args
    source = inspect.getsource(parser)
    assert "get_last_checkpoint(training_args.output_dir)" in source
    assert "training_args.resume_from_checkpoint = last_checkpoint" in source

    out = tmp_path / "out"
    checkpoint = out / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(b"x")
    manifest = {"stage": "fastslow_ar", "run": "r1", "files": {}}
    (checkpoint / "llamafactory_video_artifacts.json").write_text(json.dumps(manifest))
    args = dict(
        stage="sft",
        model_name_or_path=str(tmp_path / "model"),
        do_train=True,
        finetuning_type="lora",
        template="qwen2_vl",
        dataset="x",
        output_dir=str(out),
        report_to="none",
    )
    with pytest.raises(ValueError, match="written by `stage: fastslow_ar`") as err:
        get_train_args(dict(args))
    assert str(checkpoint) in str(err.value) and "overwrite_output_dir" in str(err.value)
    assert get_train_args(dict(args, overwrite_output_dir=True))[2].resume_from_checkpoint is None


def test_stage_table_names_every_stage_arguments_and_the_parser_gets_them():
    r"""One stage table: each registered stage's argument mixin comes from its ``StageSpec.arguments``, and the host
    parser's argument lists hold our classes after the plugin is imported (host/parser.py)."""
    from llamafactory.hparams import parser

    from llamafactory_video.hparams import STAGE_ARGUMENT_CLASSES, VideoFinetuningArguments, VideoModelArguments
    from llamafactory_video.host.parser import PARSER_ARG_LISTS
    from llamafactory_video.registry import STAGES

    assert set(STAGE_ARGUMENT_CLASSES) == {name for name, spec in STAGES.items() if spec.arguments} == set(STAGES)
    for name, spec in STAGES.items():
        mixin = spec.load_arguments()
        assert STAGE_ARGUMENT_CLASSES[name] is mixin and issubclass(VideoFinetuningArguments, mixin)
    from llamafactory.hparams.finetuning_args import FinetuningArguments
    from llamafactory.hparams.model_args import ModelArguments

    present = [getattr(parser, n) for n in PARSER_ARG_LISTS if getattr(parser, n, None)]  # MCA's is empty here
    assert present and all(VideoModelArguments in lst for lst in present)
    assert VideoFinetuningArguments in parser._TRAIN_ARGS
    assert not any(stock in lst for lst in present for stock in (FinetuningArguments, ModelArguments))


def test_clip_vip_registration_and_the_clip_pieces_it_reuses(tmp_path):
    r"""host/clip_vip.py: transformers' auto-class registration API, the CLIP modules CLIP-ViP builds on, and the
    registration happening when ``llamafactory.model.loader`` loads (a fresh process: AutoModel then loads a
    ``clip_vip`` directory)."""
    from transformers import AutoConfig, AutoModel
    from transformers import initialization as init
    from transformers.models.clip import modeling_clip

    for api, first in ((AutoConfig.register, "model_type"), (AutoModel.register, "config_class")):
        params = list(inspect.signature(api).parameters)
        assert params[0] == first and "exist_ok" in params, (api, params)
    for name in ("normal_", "zeros_", "constant_"):
        assert callable(getattr(init, name))
    assert callable(getattr(modeling_clip.CLIPPreTrainedModel, "_init_weights"))
    mlp = modeling_clip.CLIPMLP(_tiny_clip_text_config())
    assert all(hasattr(mlp, name) for name in ("fc1", "fc2", "activation_fn"))
    text = modeling_clip.CLIPTextModel(_tiny_clip_text_config())
    out = text(input_ids=torch_long([[0, 5, 1]]))
    assert out.pooler_output.shape == (1, 16) and hasattr(text.embeddings, "token_embedding")

    from llamafactory_video.testing.tiny_clip_vip import build_tiny_clip_vip

    model_dir = build_tiny_clip_vip(str(tmp_path / "clip-vip"), hidden_size=32, intermediate_size=64)
    code = (
        "import llamafactory.model.loader; from transformers import AutoModel; "
        f"print(type(AutoModel.from_pretrained({model_dir!r})).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    assert out.stdout.strip().splitlines()[-1] == "ClipVipModel"


def _tiny_clip_text_config():
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, eos_token_id=1
    )


def torch_long(rows):
    import torch

    return torch.tensor(rows, dtype=torch.long)
