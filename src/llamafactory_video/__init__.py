"""llamafactory-video: video stages for the stock LlamaFactory CLI.

Installing the package is enough: a startup hook (``_bootstrap``) teaches LlamaFactory the stages
listed in :mod:`llamafactory_video.registry` in every Python process, torchrun ranks and LlamaBoard
runs included. Set ``LLAMAFACTORY_VIDEO_DISABLE=1`` to turn the plugin off.

This module stays import-light on purpose: the startup hook imports it in every process.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
