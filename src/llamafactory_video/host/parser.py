r"""Our argument classes in LlamaFactory's argument parser.

The host parses a YAML into the classes listed in ``llamafactory.hparams.parser._TRAIN_ARGS`` (and the infer /
eval / MCA lists). :func:`install_into_parser` swaps in :class:`~llamafactory_video.hparams.VideoFinetuningArguments`
(every registered stage's keys), :class:`~llamafactory_video.hparams.VideoModelArguments` and
:class:`~llamafactory_video.hparams.VideoGeneratingArguments`, and keeps ``ModelArguments.copyfrom`` working on
them. Installed by ``host/patches.py`` when the host's parser is imported (or by ``hparams.py`` itself when it was
mid-import at that moment); contract-tested in ``tests/unit/test_host_contract.py``.
"""

from __future__ import annotations

from types import ModuleType

from llamafactory.hparams.finetuning_args import FinetuningArguments
from llamafactory.hparams.generating_args import GeneratingArguments
from llamafactory.hparams.model_args import ModelArguments


PARSER_ARG_LISTS: tuple[str, ...] = ("_TRAIN_ARGS", "_INFER_ARGS", "_EVAL_ARGS", "_TRAIN_MCA_ARGS")
"""The host parser's argument-class lists we swap our classes into (those present in this host version)."""


def _copyfrom_keeping_subclass(original):
    r"""``ModelArguments.copyfrom(source)`` builds ``cls(**fields(source))``; the host calls it on the base class
    (reference / reward models), which would reject our extra keys. Build the source's own class instead."""
    func = original.__func__

    def copyfrom(cls, source, **kwargs):
        if isinstance(source, cls) and type(source) is not cls:
            cls = type(source)
        return func(cls, source, **kwargs)

    copyfrom.__wrapped__ = func
    return classmethod(copyfrom)


def install_into_parser(parser_module: ModuleType) -> None:
    r"""Swap our argument classes into the host parser's argument lists (host/patches.py calls this)."""
    from ..hparams import VideoFinetuningArguments, VideoGeneratingArguments, VideoModelArguments

    if not hasattr(ModelArguments.__dict__["copyfrom"].__func__, "__wrapped__"):
        ModelArguments.copyfrom = _copyfrom_keeping_subclass(ModelArguments.__dict__["copyfrom"])
    swap = {
        FinetuningArguments: VideoFinetuningArguments,
        GeneratingArguments: VideoGeneratingArguments,
        ModelArguments: VideoModelArguments,
    }
    for list_name in PARSER_ARG_LISTS:
        arg_classes = getattr(parser_module, list_name, None)
        if isinstance(arg_classes, list):
            arg_classes[:] = [swap.get(cls, cls) for cls in arg_classes]
