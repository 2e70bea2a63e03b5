"""Which plugin stage is loading data in this process, and with which arguments.

LlamaFactory's loader passes only ``stage`` down to its data functions. A workflow wraps its
``get_dataset`` call in :func:`stage_data_context` so the host patches can build the stage's
processor with the stage's own arguments (``num_action_classes``, ``action_token`` ...).
"""

from contextlib import contextmanager
from typing import Any, Iterator, Optional


_STAGE_ARGS: Optional[Any] = None


@contextmanager
def stage_data_context(finetuning_args: Any) -> Iterator[None]:
    global _STAGE_ARGS
    previous, _STAGE_ARGS = _STAGE_ARGS, finetuning_args
    try:
        yield
    finally:
        _STAGE_ARGS = previous


def current_stage_args() -> Optional[Any]:
    return _STAGE_ARGS
