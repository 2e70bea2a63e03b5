"""Dataset processors of the plugin stages (host ``DatasetProcessor`` subclasses)."""

from .action_cls import ActionClsDatasetProcessor
from .scst import ScstDatasetProcessor
from .sparc_align import SparcAlignDatasetProcessor


__all__ = ["ActionClsDatasetProcessor", "ScstDatasetProcessor", "SparcAlignDatasetProcessor"]
