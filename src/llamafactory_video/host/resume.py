"""Resuming another stage's checkpoint: ``get_train_args`` refuses it, for every stage (stock ones included).

LlamaFactory's ``get_train_args`` sets ``resume_from_checkpoint`` to the last ``checkpoint-N`` of ``output_dir`` when
``overwrite_output_dir`` is false (``transformers.trainer_utils.get_last_checkpoint``). When that checkpoint (or one
named explicitly) was written by another stage (its ``llamafactory_video_artifacts.json``, or a head file only one
plugin stage writes), the run would train on with that stage's optimizer state and without its own head files; the
wrapped ``get_train_args`` stops with an error naming the checkpoint and its stage
(``artifacts.check_resume_checkpoint``).
"""

from types import ModuleType


def patch_get_train_args(parser: ModuleType) -> None:
    original = parser.get_train_args

    def get_train_args(*args, **kwargs):
        from ..artifacts import check_resume_checkpoint

        result = original(*args, **kwargs)
        _, _, training_args, finetuning_args, _ = result
        checkpoint = training_args.resume_from_checkpoint
        if training_args.do_train and isinstance(checkpoint, str):
            check_resume_checkpoint(
                checkpoint,
                str(finetuning_args.stage),
                training_args.output_dir,
                bool(getattr(training_args, "overwrite_output_dir", False)),
            )
        return result

    get_train_args.__wrapped__ = original
    parser.get_train_args = get_train_args
