"""Converters from official dataset layouts to LlamaFactory sharegpt JSON plus ``dataset_info.json`` entries.

Each ``convert_*`` function writes its files and returns a :class:`ConversionSummary`; a malformed input
entry raises :class:`ConversionError` naming the file, the line (or entry) and the key. Standard library only.
"""

from .common import ConversionError, ConversionSummary, run_conversion
from .llava_video import convert_llava_video
from .msrvtt import convert_msrvtt
from .nextqa import convert_nextqa
from .sthsthv2 import convert_sthsthv2
from .ucf101 import convert_ucf101
from .valley import convert_valley
from .videoqa import convert_condensed_movies, convert_videochatgpt

__all__ = [
    "ConversionError",
    "ConversionSummary",
    "convert_condensed_movies",
    "convert_llava_video",
    "convert_msrvtt",
    "convert_nextqa",
    "convert_sthsthv2",
    "convert_ucf101",
    "convert_valley",
    "convert_videochatgpt",
    "run_conversion",
]
