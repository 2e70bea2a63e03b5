"""Dataset tooling: converters from official dataset layouts and the video dataset health check.

* :mod:`llamafactory_video.tools.convert` — UCF101, Something-Something v2 and MSR-VTT to LlamaFactory JSON plus
  ``dataset_info.json`` entries (``scripts/prepare_*.py`` are their command lines);
* :mod:`llamafactory_video.tools.check_data` — ``llamafactory-video check-data``.

Import-light on purpose: ``llamafactory-video --help`` imports this package.
"""
