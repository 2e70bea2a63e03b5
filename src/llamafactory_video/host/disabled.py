"""``LLAMAFACTORY_VIDEO_DISABLE=1``: the host runs stock, but a YAML that uses our stages or keys is told why.

Without this, ``stage: action_cls`` got past the stock parser (``parse_dict`` does not check the stage) and our
keys failed as "Some keys are not used by the HfArgumentParser", neither naming the variable that turned the
plugin off. The only patch applied when disabled wraps ``llamafactory.hparams.parser._parse_args``: a plugin
stage fails before parsing, and a parse error of a config that holds plugin keys gains a sentence naming the
variable. Anything else goes to the host's function untouched. Imported only once the host parser has loaded;
our key names are read (from :mod:`llamafactory_video.hparams`) only on the error path.
"""

from types import ModuleType
from typing import Any

from .. import registry
from .._bootstrap import DISABLE_ENV
from .tuner import peek_stage


PATCHED_FLAG = "__llamafactory_video_disabled_notice__"


def _given_keys(args: Any) -> list[str]:
    if isinstance(args, dict):
        return [str(key) for key in args]
    if isinstance(args, (list, tuple)):
        return [item[2:].split("=", 1)[0] for item in args if isinstance(item, str) and item.startswith("--")]
    return []


def plugin_keys_in(args: Any) -> list[str]:
    r"""The keys of ``args`` (a config dict or an argument list) that only llamafactory-video defines."""
    from ..hparams import plugin_keys

    ours = plugin_keys()
    return [key for key in _given_keys(args) if key in ours]


def disabled_message(what: str, alternative: str = "") -> str:
    return (
        f"{what}, and llamafactory-video is disabled by the environment variable {DISABLE_ENV}. "
        f"Unset {DISABLE_ENV} (or set it to 0) to use the plugin{alternative}."
    )


def patch_parse_args(module: ModuleType) -> None:
    original = module._parse_args

    def _parse_args(parser, args=None, allow_extra_keys: bool = False):
        args = module.read_args(args)
        stage = peek_stage(args)
        if stage in registry.STAGES:
            raise ValueError(disabled_message(f"`stage: {stage}` is a llamafactory-video stage"))
        try:
            return original(parser, args, allow_extra_keys=allow_extra_keys)
        except ValueError as err:
            keys = plugin_keys_in(args)
            if not keys:
                raise
            listed = ", ".join(f"`{key}`" for key in keys)
            notice = disabled_message(f"{listed} are llamafactory-video keys", ", or remove those keys")
            raise ValueError(f"{err}\n{notice}") from err

    _parse_args.__wrapped__ = original
    module._parse_args = _parse_args


def on_host_module_loaded_disabled(name: str, module: ModuleType) -> None:
    if name != "llamafactory.hparams.parser" or getattr(module, PATCHED_FLAG, False):
        return
    patch_parse_args(module)
    setattr(module, PATCHED_FLAG, True)
