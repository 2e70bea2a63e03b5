"""Dataset processors of the plugin stages (host ``DatasetProcessor`` subclasses)."""

from .action_cls import ActionClsDatasetProcessor
from .scst import ScstDatasetProcessor


__all__ = ["ActionClsDatasetProcessor", "ScstDatasetProcessor"]
