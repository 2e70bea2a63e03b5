"""Loggers under LlamaFactory's ``llamafactory`` hierarchy, so messages use the host's format and handlers."""

from llamafactory.extras import logging as host_logging


def get_logger(name: str):
    """Return the host logger ``llamafactory.video.<last part of name>`` (with ``info_rank0`` etc.)."""
    suffix = name.split("llamafactory_video.", 1)[-1]
    return host_logging.get_logger(f"llamafactory.video.{suffix}")
