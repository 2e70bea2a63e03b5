"""``LLAMAFACTORY_VIDEO_DISABLE=1``: a config that uses our stages or keys fails naming the variable (issue 16)."""

import inspect
import os
import subprocess
import sys
import textwrap


CODE = textwrap.dedent(
    """
    import sys
    startup = sorted(m for m in sys.modules if m.startswith("llamafactory"))
    print("STARTUP", startup)
    from llamafactory.hparams import get_train_args
    print("AFTER_PARSER_IMPORT", "llamafactory_video.hparams" in sys.modules)
    base = dict(model_name_or_path="x", do_train=False, output_dir="/tmp/none", template="qwen2_vl")
    cases = [
        dict(base, stage="action_cls"),
        dict(base, stage="sft", scst_baseline="greedy", video_token_pool_stride=2),
        dict(base, stage="sft", not_a_key_of_anyone=1),
        ["--model_name_or_path", "x", "--output_dir", "/tmp/none", "--stage", "scst"],
        ["--model_name_or_path", "x", "--output_dir", "/tmp/none", "--sparc_local_layer", "all_layers"],
    ]
    for case in cases:
        try:
            get_train_args(case)
            print("CASE ok")
        except BaseException as err:
            print("CASE", type(err).__name__, str(err).replace("\\n", " "))
    get_train_args(dict(base, stage="sft"))
    print("STOCK ok")
    """
)


def _run(disabled: bool) -> list[str]:
    env = dict(os.environ)
    env.pop("LLAMAFACTORY_VIDEO_DISABLE", None)
    if disabled:
        env["LLAMAFACTORY_VIDEO_DISABLE"] = "1"
    out = subprocess.run(
        [sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    tags = ("STARTUP", "AFTER_PARSER_IMPORT", "CASE", "STOCK")
    return [line for line in out.stdout.splitlines() if line.split(" ")[0] in tags]


def test_disabled_plugin_is_named_in_the_error_and_costs_nothing_at_startup():
    lines = _run(disabled=True)
    startup, after_import, *cases, stock = lines
    # the startup hook stays standard-library only: no plugin module beyond the bootstrap is imported ...
    assert startup == "STARTUP ['llamafactory_video', 'llamafactory_video._bootstrap']", startup
    # ... and our key table is read only when a parse fails
    assert after_import == "AFTER_PARSER_IMPORT False"
    stage_yaml, keys_yaml, stock_typo, stage_argv, keys_argv = cases
    for line in (stage_yaml, stage_argv):
        assert line.startswith("CASE ValueError") and "is a llamafactory-video stage" in line, line
        assert "disabled by the environment variable LLAMAFACTORY_VIDEO_DISABLE" in line, line
    assert "`scst_baseline`, `video_token_pool_stride` are llamafactory-video keys" in keys_yaml, keys_yaml
    assert "`sparc_local_layer` are llamafactory-video keys" in keys_argv, keys_argv
    for line in (keys_yaml, keys_argv):
        assert "Some" in line and "LLAMAFACTORY_VIDEO_DISABLE" in line, line  # the host's message is kept
    # a config that is wrong for its own reasons gets the host's message only
    assert "not_a_key_of_anyone" in stock_typo and "LLAMAFACTORY_VIDEO_DISABLE" not in stock_typo
    assert stock == "STOCK ok"


def test_enabled_plugin_parses_the_same_configs():
    _, _, stage_yaml, keys_yaml, stock_typo, stage_argv, keys_argv, stock = _run(disabled=False)
    assert stage_yaml == keys_yaml == stage_argv == keys_argv == "CASE ok"
    assert "not_a_key_of_anyone" in stock_typo and "LLAMAFACTORY_VIDEO_DISABLE" not in stock_typo
    assert stock == "STOCK ok"


def test_host_parse_args_contract():
    r"""host/disabled.py wraps ``_parse_args(parser, args, allow_extra_keys)`` and calls ``read_args`` itself."""
    from llamafactory.hparams import parser

    original = getattr(parser._parse_args, "__wrapped__", parser._parse_args)
    assert list(inspect.signature(original).parameters) == ["parser", "args", "allow_extra_keys"]
    source = inspect.getsource(original)
    assert "read_args(args)" in source and "parse_dict" in source
    assert parser.read_args({"a": 1}) == {"a": 1}  # a given config passes through unchanged
    for name in ("_parse_train_args", "_parse_infer_args", "_parse_eval_args"):
        assert "_parse_args(" in inspect.getsource(getattr(parser, name)), name
