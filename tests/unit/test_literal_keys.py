"""Every key with a fixed set of values is checked when the YAML is parsed (issue 16, item 3).

``HfArgumentParser.parse_dict`` (YAML files, ``key=value`` overrides, LlamaBoard) does not check ``Literal``
annotations; our dataclasses do it in ``__post_init__``. The first tests are generated over the fields, so a new
``Literal`` key of any of our argument classes is covered without touching this file.
"""

import dataclasses
import importlib
import pkgutil
import sys

import pytest

from llamafactory_video._literals import literal_choices, literal_fields


BOGUS = "not_a_valid_choice"
BEST_MESSAGE = "Invalid value `best` for `scst_baseline`; allowed values: greedy, beam, mean"


def _our_argument_classes() -> list[type]:
    r"""Dataclasses defined in our hparams module and in our tools' modules."""
    from llamafactory_video import hparams, tools

    modules = [hparams]
    for info in pkgutil.walk_packages(tools.__path__, tools.__name__ + "."):
        modules.append(importlib.import_module(info.name))
    classes = []
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == module.__name__:
                classes.append(value)
    return classes


def _build(cls: type, **kwargs):
    from llamafactory_video.hparams import VideoModelArguments

    if issubclass(cls, VideoModelArguments):
        kwargs.setdefault("model_name_or_path", "x")
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and f.name not in kwargs
    ]
    kwargs.update({name: "x" for name in required})
    return cls(**kwargs)


def _literal_cases() -> list[tuple[type, str, tuple]]:
    cases = []
    for cls in _our_argument_classes():
        owners = [c for c in cls.__mro__ if c.__module__.startswith("llamafactory_video")]
        for name, choices in literal_fields(owners).items():
            cases.append((cls, name, choices))
    return cases


CASES = _literal_cases()


def test_the_generated_cases_cover_our_classes():
    names = {(cls.__name__, name) for cls, name, _ in CASES}
    for expected in (
        ("ActionClsArguments", "action_decoder_type"),
        ("ScstArguments", "scst_baseline"),
        ("SparcAlignArguments", "sparc_local_layer"),
        ("FastslowArArguments", "fastslow_pool_mode"),
        ("VideoFinetuningArguments", "stage"),
        ("VideoFinetuningArguments", "action_invalid_samples"),
        ("VideoModelArguments", "video_token_pool_mode"),
        ("LongQAConfig", "embedder_kind"),
    ):
        assert expected in names, expected


@pytest.mark.parametrize(("cls", "name", "choices"), CASES, ids=[f"{c.__name__}.{n}" for c, n, _ in CASES])
def test_every_literal_key_rejects_a_wrong_value_naming_the_allowed_ones(cls, name, choices):
    _build(cls)  # the defaults are allowed values
    with pytest.raises(ValueError) as info:
        _build(cls, **{name: BOGUS})
    message = str(info.value)
    assert f"`{name}`" in message and BOGUS in message, message
    for choice in choices:
        assert str(choice) in message, (choice, message)


def test_no_key_of_ours_with_a_fixed_set_of_values_is_a_plain_str():
    r"""A help text that lists backticked choices ("`a`, `b` or `c`") on a ``str`` field means a missing Literal."""
    import re
    from typing import Optional

    from llamafactory_video._literals import _own_annotations

    for cls in _our_argument_classes():
        ours = {}
        for owner in cls.__mro__:
            if owner.__module__.startswith("llamafactory_video"):
                ours.update(_own_annotations(owner))
        for f in dataclasses.fields(cls):
            if f.name not in ours or ours[f.name] not in (str, Optional[str]):
                continue
            help_text = f.metadata.get("help", "")
            assert not re.search(r"`\w+`(, `\w+`)* or `\w+`", help_text), (cls.__name__, f.name, help_text)


def test_literal_choices_reads_optional_literals():
    from typing import Literal, Optional

    assert literal_choices(Literal["a", "b"]) == ("a", "b")
    assert literal_choices(Optional[Literal["a"]]) == ("a", None)
    assert literal_choices(Optional[str]) is None and literal_choices(int) is None


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("scst_baseline", "best", "greedy, beam, mean"),
        ("sparc_local_layer", "last_layer", "before_projector, after_embedding, all_layers"),
        ("action_invalid_samples", "ignore", "error, skip"),
        ("action_decoder_type", "conv", "linear, mlp"),
    ],
)
def test_the_issue_cases_fail_at_parse_time(key, value, allowed):
    from llamafactory.hparams import get_train_args

    base = dict(stage="sft", model_name_or_path="x", do_train=False, output_dir="/tmp/none", template="qwen2_vl")
    with pytest.raises(ValueError, match=f"Invalid value `{value}` for `{key}`; allowed values: {allowed}"):
        get_train_args(dict(base, **{key: value}))


def test_a_stage_typo_lists_the_known_stages():
    from llamafactory.hparams import get_train_args

    base = dict(model_name_or_path="x", do_train=False, output_dir="/tmp/none", template="qwen2_vl")
    with pytest.raises(ValueError) as info:
        get_train_args(dict(base, stage="action_clss"))
    message = str(info.value)
    assert "`action_clss` for `stage`" in message
    for stage in ("pt", "sft", "dpo", "kto", "action_cls", "scst", "fastslow_ar", "sparc_align"):
        assert f"{stage}," in message or f"{stage} (" in message, (stage, message)


def _write_yaml(tmp_path, **extra):
    lines = [
        "### model",
        "model_name_or_path: x",
        "### method",
        "stage: scst",
        "do_train: false",
        "template: qwen2_vl",
        f"output_dir: {tmp_path / 'out'}",
    ] + [f"{k}: {v}" for k, v in extra.items()]
    path = tmp_path / "scst.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def no_training(monkeypatch):
    r"""``run_exp`` as ``llamafactory-cli train`` calls it, with the stage workflow (model and data loading)
    replaced by a recorder."""
    from llamafactory_video import registry

    calls = []
    monkeypatch.setattr(registry.StageSpec, "load_workflow", lambda self: lambda *args: calls.append(self.name))
    return calls


def test_a_yaml_with_a_wrong_value_fails_before_any_loading(tmp_path, monkeypatch, no_training):
    from llamafactory.train.tuner import run_exp

    path = _write_yaml(tmp_path, scst_baseline="best")
    monkeypatch.setattr(sys, "argv", ["llamafactory-cli", str(path)])
    with pytest.raises(ValueError, match=BEST_MESSAGE):
        run_exp()
    assert no_training == []

    # the same YAML with a valid value reaches the workflow: the check above is what stopped it
    monkeypatch.setattr(sys, "argv", ["llamafactory-cli", str(_write_yaml(tmp_path, scst_baseline="mean"))])
    run_exp()
    assert no_training == ["scst"]


def test_a_command_line_override_is_checked_too(tmp_path, monkeypatch, no_training):
    from llamafactory.train.tuner import run_exp

    path = _write_yaml(tmp_path, scst_baseline="greedy")
    monkeypatch.setattr(sys, "argv", ["llamafactory-cli", str(path), "scst_baseline=best"])
    with pytest.raises(ValueError, match="Invalid value `best` for `scst_baseline`"):
        run_exp()
    monkeypatch.setattr(sys, "argv", ["llamafactory-cli", str(path), "stage=action_clss"])
    with pytest.raises(ValueError, match="known stages: pt"):
        run_exp()
    assert no_training == []
