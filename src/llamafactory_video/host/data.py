"""Data-side patches: extra dataset columns through parser, converter and loader; stage processors."""

from types import ModuleType
from typing import Any

from .. import registry
from ..data.columns import ExtraColumnConverter, check_declared_columns
from ..data.context import current_stage_args


def patch_dataset_attr(dataset_attr_cls: type) -> None:
    r"""``DatasetAttr.join`` also records ``extra_columns`` ({key: column}) and ``label_names``."""
    original_join = dataset_attr_cls.join
    dataset_attr_cls.extra_columns = None  # instances never joined (hub datasets) see these defaults
    dataset_attr_cls.label_names = None

    def join(self, attr: dict[str, Any]) -> None:
        original_join(self, attr)
        columns = attr.get("columns", {}) or {}
        self.extra_columns = {key: columns[key] for key in registry.extra_column_keys() if key in columns}
        self.label_names = attr.get("label_names")

    join.__wrapped__ = original_join
    dataset_attr_cls.join = join


def patch_loader(loader: ModuleType) -> None:
    original_get_processor = loader._get_dataset_processor
    original_align = loader.align_dataset
    original_merged = loader._get_merged_dataset
    active: dict[str, Any] = {"stage": None}

    def _get_merged_dataset(dataset_names, model_args, data_args, training_args, stage, return_dict=False):
        spec = registry.get_stage(stage)
        previous, active["stage"] = active["stage"], spec
        try:
            merged = original_merged(
                dataset_names, model_args, data_args, training_args, stage, return_dict=return_dict
            )
        except Exception as err:
            if spec is None:
                raise
            from ..data.diagnose import explain_load_error

            explained = explain_load_error(err, dataset_names, data_args.dataset_dir)
            if explained is None:
                raise
            raise explained from err
        finally:
            active["stage"] = previous
        if spec is None or merged is None:
            return merged
        # every plugin stage: each sample's videos decode as far as training samples them, checked before training
        from .video import check_converted

        split = "eval" if dataset_names == data_args.eval_dataset and dataset_names != data_args.dataset else "train"
        args = current_stage_args()
        mode = "skip" if getattr(args, "action_invalid_samples", "error") == "skip" else "error"
        return check_converted(merged, model_args, split, mode)

    def align_dataset(dataset, dataset_attr, data_args, training_args):
        spec = active["stage"]
        if spec is None:
            return original_align(dataset, dataset_attr, data_args, training_args)

        from llamafactory.data.converter import get_dataset_converter

        column_names = list(next(iter(dataset)).keys())
        declared = dict(getattr(dataset_attr, "extra_columns", None) or {})
        name = str(dataset_attr)
        check_declared_columns(name, declared, column_names, spec.required_columns, spec.name)
        kwargs = {}
        if not data_args.streaming:
            kwargs = dict(
                num_proc=data_args.preprocessing_num_workers,
                load_from_cache_file=(not data_args.overwrite_cache) or (training_args.local_process_index != 0),
                desc="Converting format of dataset",
            )
        converter = ExtraColumnConverter(
            get_dataset_converter(dataset_attr.formatting, dataset_attr, data_args), declared, name
        )
        return dataset.map(converter, batched=False, with_indices=True, remove_columns=column_names, **kwargs)

    def _get_dataset_processor(data_args, stage, template, tokenizer, processor, do_generate=False):
        spec = registry.get_stage(stage)
        if spec is None:
            return original_get_processor(data_args, stage, template, tokenizer, processor, do_generate=do_generate)
        if spec.host_data_stage:
            from ..data.cutoff import guard_video_truncation

            host_processor = original_get_processor(
                data_args, spec.host_data_stage, template, tokenizer, processor, do_generate=do_generate
            )
            return guard_video_truncation(host_processor, spec.name)
        if current_stage_args() is None:
            raise RuntimeError(
                f"Data for stage `{stage}` must be loaded inside `stage_data_context(finetuning_args)`."
            )
        return spec.load_processor()(template=template, tokenizer=tokenizer, processor=processor, data_args=data_args)

    for name, func, original in (
        ("_get_merged_dataset", _get_merged_dataset, original_merged),
        ("align_dataset", align_dataset, original_align),
        ("_get_dataset_processor", _get_dataset_processor, original_get_processor),
    ):
        func.__wrapped__ = original
        setattr(loader, name, func)
