"""The one table of stages this plugin adds to LlamaFactory.

Only stages that are fully built are listed: the host's argument parser, its dispatcher, its data
loader and LlamaBoard's stage dropdown all read this table, so a stage appears everywhere or nowhere.
Standard library only (imported from the startup path).
"""

from dataclasses import dataclass
from importlib import import_module
from typing import Any


@dataclass(frozen=True)
class StageSpec:
    name: str
    """Value of ``stage:`` in the YAML."""
    label: str
    """Name shown in LlamaBoard's training-stage dropdown."""
    workflow: str
    """``module:function`` with the signature of the host's ``run_sft``."""
    arguments: str = ""
    """``module:Class``, the stage's argument mixin (its keys join the host's ``FinetuningArguments``)."""
    processor: str = ""
    """``module:Class``, a host ``DatasetProcessor`` subclass used for this stage's datasets."""
    host_data_stage: str = ""
    """Instead of ``processor``: process this stage's datasets exactly as this host stage does (e.g. ``sft``)."""
    extra_columns: tuple[str, ...] = ()
    """``dataset_info.json`` column keys carried through conversion and processing as ``_<key>``."""
    required_columns: tuple[str, ...] = ()
    """The subset of ``extra_columns`` every dataset of this stage must declare."""
    docs: str = ""
    """Docs page, relative to the repository root."""

    def load_workflow(self) -> Any:
        return _load(self.workflow)

    def load_processor(self) -> Any:
        return _load(self.processor)

    def load_arguments(self) -> Any:
        return _load(self.arguments)


def _load(path: str) -> Any:
    module_name, attr = path.split(":")
    return getattr(import_module(module_name), attr)


STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            name="action_cls",
            label="Video Action Classification",
            workflow="llamafactory_video.train.action_cls.workflow:run_action_cls",
            arguments="llamafactory_video.hparams:ActionClsArguments",
            processor="llamafactory_video.data.processor:ActionClsDatasetProcessor",
            extra_columns=("action_label",),
            required_columns=("action_label",),
            docs="docs/stages/action_cls.md",
        ),
        StageSpec(
            name="scst",
            label="Video Captioning SCST",
            workflow="llamafactory_video.train.scst.workflow:run_scst",
            arguments="llamafactory_video.hparams:ScstArguments",
            processor="llamafactory_video.data.processor:ScstDatasetProcessor",
            extra_columns=("references", "category", "answer"),
            required_columns=("references",),
            docs="docs/stages/scst.md",
        ),
        StageSpec(
            name="fastslow_ar",
            label="Video Fast/Slow Autoregressive",
            workflow="llamafactory_video.train.fastslow_ar.workflow:run_fastslow_ar",
            arguments="llamafactory_video.hparams:FastslowArArguments",
            host_data_stage="sft",
            docs="docs/stages/fastslow_ar.md",
        ),
        StageSpec(
            name="sparc_align",
            label="Video-Text Alignment (SPARC)",
            workflow="llamafactory_video.train.sparc_align.workflow:run_sparc_align",
            arguments="llamafactory_video.hparams:SparcAlignArguments",
            processor="llamafactory_video.data.processor:SparcAlignDatasetProcessor",
            extra_columns=("captions", "video_id"),
            docs="docs/stages/sparc_align.md",
        ),
    )
}


def get_stage(name: str) -> StageSpec | None:
    return STAGES.get(name)


def extra_column_keys() -> tuple[str, ...]:
    """Every extra column key any registered stage declares, in a stable order."""
    keys: list[str] = []
    for spec in STAGES.values():
        keys.extend(key for key in spec.extra_columns if key not in keys)
    return tuple(keys)
