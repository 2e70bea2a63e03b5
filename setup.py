"""Packaging of llamafactory-video.

Besides the package, the distribution ships ``llamafactory_video.pth`` at the root of site-packages
(the technique coverage.py uses): Python runs its ``import`` line at the start of EVERY process, so the
stock ``llamafactory-cli``, each torchrun rank and each LlamaBoard run see the plugin's stages. The
file is added both to regular wheels (``build_py``) and to PEP 660 editable wheels (``editable_wheel``).
"""

import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

try:
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # setuptools < 64 has no PEP 660 support
    editable_wheel = None


PTH_NAME = "llamafactory_video.pth"
PTH_LINE = "import llamafactory_video._bootstrap\n"


def _write_pth(directory: str) -> str:
    path = os.path.join(directory, PTH_NAME)
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(PTH_LINE)
    return path


class BuildPyWithPth(build_py):
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            _write_pth(self.build_lib)

    def get_outputs(self, include_bytecode=1):
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [os.path.join(self.build_lib, PTH_NAME)]


cmdclass = {"build_py": BuildPyWithPth}

if editable_wheel is not None:

    class EditableWheelWithPth(editable_wheel):
        def _run_build_commands(self, dist_name, unpacked_wheel, build_lib, tmp_dir):
            result = super()._run_build_commands(dist_name, unpacked_wheel, build_lib, tmp_dir)
            _write_pth(str(unpacked_wheel))
            return result

    cmdclass["editable_wheel"] = EditableWheelWithPth


def _requirements() -> list[str]:
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements.txt"), encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


setup(
    name="llamafactory-video",
    version="0.1.0",
    description="Video stages (action_cls, ...) for the stock LlamaFactory CLI and LlamaBoard",
    long_description=open("README.md", encoding="utf-8").read() if os.path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "src"},
    packages=find_packages("src"),
    install_requires=_requirements(),
    extras_require={
        "decord": ["decord>=0.6.0"],
        "gpu": ["flash-attn>=2.6.3", "liger-kernel>=0.5.0", "deepspeed>=0.14.4,<=0.16.9"],
        "flash-attn": ["flash-attn>=2.6.3"],
        "liger-kernel": ["liger-kernel>=0.5.0"],
        "deepspeed": ["deepspeed>=0.14.4,<=0.16.9"],
        "test": ["pytest>=8", "pytest-xdist>=3.5", "pytest-timeout>=2.3", "pycocoevalcap==1.2", "tensorboard>=2.15"],
    },
    entry_points={"console_scripts": ["llamafactory-video = llamafactory_video.cli:main"]},
    cmdclass=cmdclass,
)
