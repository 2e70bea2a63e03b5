"""Dispatch plugin stages from LlamaFactory's ``train/tuner.py::_training_function``.

The host dispatches with an if/elif chain that ends in "Unknown task". The patched function peeks
at ``stage`` in the raw arguments: a stock stage goes to the original function untouched; a plugin
stage gets the same callbacks the host would give it (``HOST_CALLBACKS``, checked against the host's
source by a contract test) and runs its registered workflow.
"""

from types import ModuleType
from typing import Any, Optional

from .. import registry


# callables the host's _training_function appends to `callbacks` (contract-tested)
HOST_CALLBACKS = (
    "LogCallback",
    "PissaConvertCallback",
    "get_swanlab_callback",
    "EarlyStoppingCallback",
    "TorchProfilerCallback",
    "ModuleProfilerCallback",
    "ReporterCallback",
)


def peek_stage(args: Any) -> Optional[str]:
    r"""``stage`` from a parsed YAML dict or a ``--stage X`` / ``--stage=X`` argument list."""
    if isinstance(args, dict):
        return args.get("stage")
    if isinstance(args, (list, tuple)):
        for i, item in enumerate(args):
            if item == "--stage" and i + 1 < len(args):
                return args[i + 1]
            if isinstance(item, str) and item.startswith("--stage="):
                return item.split("=", 1)[1]
    return None


def run_plugin_stage(tuner: ModuleType, spec: registry.StageSpec, config: dict[str, Any]) -> None:
    import torch.distributed as dist
    from transformers import EarlyStoppingCallback

    args = config.get("args")
    callbacks: list[Any] = config.get("callbacks")
    model_args, data_args, training_args, finetuning_args, generating_args = tuner.get_train_args(args)

    callbacks.append(tuner.LogCallback())
    if finetuning_args.pissa_convert:
        callbacks.append(tuner.PissaConvertCallback())
    if finetuning_args.use_swanlab:
        callbacks.append(tuner.get_swanlab_callback(finetuning_args))
    if finetuning_args.early_stopping_steps is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=finetuning_args.early_stopping_steps))
    if getattr(training_args, "enable_torch_profiler", False):
        callbacks.append(tuner.TorchProfilerCallback(training_args))
    if getattr(training_args, "profile_modules", None):
        callbacks.append(tuner.ModuleProfilerCallback(training_args.profile_modules))
    callbacks.append(tuner.ReporterCallback(model_args, data_args, finetuning_args, generating_args))  # add to last

    spec.load_workflow()(model_args, data_args, training_args, finetuning_args, generating_args, callbacks)

    try:
        if dist.is_initialized():
            # Rank 0 still writes metrics, state and plots after the others are done: leave together, so that no
            # rank tears its process group (and process) down while a peer is still working.
            dist.barrier()
            dist.destroy_process_group()
    except Exception as err:
        tuner.logger.warning(f"Failed to destroy process group: {err}.")


def add_stock_stage_callbacks(config: dict[str, Any]) -> None:
    r"""Our callbacks for a stock stage, when its keys ask for them: ``caption_degeneration_watch`` (stage sft).
    The host hands ``config["callbacks"]`` to the stage's trainer (contract-tested)."""
    from ..callbacks.degeneration import watch_from_raw_args

    watch = watch_from_raw_args(config.get("args"))
    if watch is not None:
        if config.get("callbacks") is None:
            config["callbacks"] = []
        config["callbacks"].append(watch)


def patch_training_function(tuner: ModuleType) -> None:
    original = tuner._training_function

    def _training_function(config: dict[str, Any]) -> None:
        spec = registry.get_stage(peek_stage(config.get("args")))
        if spec is None:
            add_stock_stage_callbacks(config)
            return original(config)
        return run_plugin_stage(tuner, spec, config)

    _training_function.__wrapped__ = original
    tuner._training_function = _training_function
