"""Startup hook run by ``llamafactory_video.pth`` in every Python process.

Standard library only and no work beyond installing one meta-path finder: the plugin must cost
(almost) nothing in processes that never import LlamaFactory. When one of the host modules listed
in ``HOOKED_MODULES`` finishes executing, :func:`llamafactory_video.host.patches.on_host_module_loaded`
patches it. Modules imported before the finder was installed are patched at once.

With ``LLAMAFACTORY_VIDEO_DISABLE=1`` the host is left as it is, except that the parser of
``llamafactory.hparams.parser`` learns to say so when a YAML uses one of our stages or keys
(:mod:`llamafactory_video.host.disabled`); nothing else is hooked.
"""

import os
import sys


DISABLE_ENV = "LLAMAFACTORY_VIDEO_DISABLE"

# host module -> patched right after it executes (see host/patches.py for what each patch does)
HOOKED_MODULES = frozenset(
    (
        "llamafactory.extras.constants",
        "llamafactory.hparams.parser",
        "llamafactory.data.parser",
        "llamafactory.data.loader",
        "llamafactory.data.mm_plugin",
        "llamafactory.data.template",
        "llamafactory.model.loader",
        "llamafactory.train.tuner",
        "llamafactory.train.trainer_utils",
    )
)

# hooked when the plugin is disabled: only to name the variable in the error a plugin YAML then gets
DISABLED_HOOKED_MODULES = frozenset(("llamafactory.hparams.parser",))


def is_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "0").lower() in ("1", "true", "yes", "y")


def _notify(name, module):
    from llamafactory_video.host.patches import on_host_module_loaded

    on_host_module_loaded(name, module)


def _notify_disabled(name, module):
    from llamafactory_video.host.disabled import on_host_module_loaded_disabled

    on_host_module_loaded_disabled(name, module)


class HostModuleFinder:
    """A meta-path finder that defers to the real finders and wraps ``exec_module`` of hooked modules."""

    _busy = False

    def __init__(self, hooked=HOOKED_MODULES, notify=_notify):
        self.hooked = hooked
        self.notify = notify

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.hooked or self._busy:
            return None

        self._busy = True
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy = False

        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec

        original_exec = loader.exec_module
        notify = self.notify

        def exec_module(module):
            original_exec(module)
            notify(fullname, module)

        loader.exec_module = exec_module
        return spec


def install():
    """Install the finder once; patch host modules that are already imported."""
    hooked, notify = (DISABLED_HOOKED_MODULES, _notify_disabled) if is_disabled() else (HOOKED_MODULES, _notify)

    if not any(isinstance(finder, HostModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, HostModuleFinder(hooked, notify))

    for name in sorted(hooked):
        module = sys.modules.get(name)
        if module is not None:
            notify(name, module)


install()
