"""Dataset processors of the plugin stages (host ``DatasetProcessor`` subclasses)."""

from .action_cls import ActionClsDatasetProcessor


__all__ = ["ActionClsDatasetProcessor"]
