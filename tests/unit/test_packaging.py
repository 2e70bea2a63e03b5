"""Packaging: the ``llamafactory_video.pth`` startup hook ships at the root of site-packages.

* a regular (non-editable) wheel carries ``llamafactory_video.pth`` at its root next to the package;
* the current venv (editable install, see the README) has the ``.pth`` in its purelib;
* installing the wheel alone (``pip install --target``) and letting ``site`` process only that directory
  is enough for the stock ``llamafactory.extras.constants.TRAINING_STAGES`` to offer ``action_cls``.

How the wheel is built: first ``pip wheel --no-deps --no-build-isolation`` (uses the venv's setuptools;
no index needed). That needs setuptools >= 70.1 (built-in ``bdist_wheel``) or the ``wheel`` package,
which the venv may lack (setuptools 65.5 without ``wheel`` fails with "invalid command 'bdist_wheel'").
Then it falls back to pip's default isolated build, which installs ``pyproject.toml``'s build requirements
(setuptools>=70, wheel) into a throwaway environment from pip's configured index / find-links (a local
mirror works offline); the venv itself is never modified.

The build runs on a copy of the sources in a temp dir: building in the repo would leave ``build/`` and
``*.egg-info`` there, and a stale ``build/lib`` can smuggle deleted modules into the wheel.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PTH_NAME = "llamafactory_video.pth"
PTH_LINE = "import llamafactory_video._bootstrap"
SOURCE_ITEMS = ("setup.py", "pyproject.toml", "README.md", "requirements.txt", "src")


def _run(cmd, timeout=300, **kwargs):
    env = dict(os.environ)
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    env.pop("LLAMAFACTORY_VIDEO_DISABLE", None)
    env.update(kwargs.pop("env", {}))
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


def _copy_sources(dst: str) -> str:
    os.makedirs(dst)
    for item in SOURCE_ITEMS:
        src = os.path.join(REPO_ROOT, item)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dst, item), ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif os.path.isfile(src):
            shutil.copy2(src, os.path.join(dst, item))
    return dst


@pytest.fixture(scope="module")
def wheel_path(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("packaging")
    source = _copy_sources(str(tmp / "source"))
    wheel_dir = str(tmp / "wheels")
    logs = []
    for extra in (["--no-build-isolation"], []):
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", *extra, "-w", wheel_dir, source]
        proc = _run(cmd)
        logs.append(f"$ {' '.join(cmd)}\n(exit {proc.returncode})\n{(proc.stdout + proc.stderr)[-3000:]}")
        wheels = [name for name in os.listdir(wheel_dir) if name.endswith(".whl")] if os.path.isdir(wheel_dir) else []
        if proc.returncode == 0 and wheels:
            assert len(wheels) == 1, wheels
            return os.path.join(wheel_dir, wheels[0])

    pytest.fail("could not build a wheel of the repo:\n\n" + "\n\n".join(logs))


def test_wheel_ships_pth_at_root(wheel_path):
    with zipfile.ZipFile(wheel_path) as zf:
        names = set(zf.namelist())
        assert PTH_NAME in names, f"{PTH_NAME} not at the wheel root: {sorted(names)}"
        assert zf.read(PTH_NAME).decode("utf-8").strip() == PTH_LINE
        for module in ("llamafactory_video/_bootstrap.py", "llamafactory_video/registry.py"):
            assert module in names, f"{module} missing from the wheel"
        # the .pth is listed in RECORD, so `pip uninstall` removes it
        record = next(name for name in names if name.endswith(".dist-info/RECORD"))
        assert any(line.split(",")[0] == PTH_NAME for line in zf.read(record).decode("utf-8").splitlines())


def test_venv_has_pth():
    purelib = sysconfig.get_paths()["purelib"]
    path = os.path.join(purelib, PTH_NAME)
    assert os.path.isfile(path), f"{path} missing: install the repo (pip install -e .) as the README says"
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    assert PTH_LINE in lines


_PROBE = textwrap.dedent(
    """
    import json, sys, site
    purelib, target, process_pth = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    sys.path.append(purelib)  # the venv's packages, WITHOUT running its .pth files
    if process_pth:
        site.addsitedir(target)  # the only directory whose .pth files run
    else:
        sys.path.append(target)
    import llamafactory_video
    from llamafactory.extras.constants import TRAINING_STAGES
    print(json.dumps({
        "package_file": llamafactory_video.__file__,
        "stages": TRAINING_STAGES,
        "sys_path": sys.path,
        "bootstrap_loaded": "llamafactory_video._bootstrap" in sys.modules,
    }))
    """
)


def _probe(target: str, process_pth: bool) -> dict:
    import json

    purelib = sysconfig.get_paths()["purelib"]
    # -S: no site processing, so neither the venv's llamafactory_video.pth nor its __editable__ path file runs
    proc = _run([sys.executable, "-S", "-c", _PROBE, purelib, target, "1" if process_pth else "0"], timeout=600)
    assert proc.returncode == 0, f"probe failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_wheel_pth_alone_activates_plugin(wheel_path, tmp_path):
    target = str(tmp_path / "site")
    proc = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", target, wheel_path])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert os.path.isfile(os.path.join(target, PTH_NAME))

    editable_src = os.path.join(REPO_ROOT, "src")
    real_target = os.path.realpath(target)

    result = _probe(target, process_pth=True)
    assert os.path.realpath(result["package_file"]).startswith(real_target + os.sep), result["package_file"]
    assert editable_src not in result["sys_path"]
    assert result["bootstrap_loaded"]
    assert result["stages"].get("Video Action Classification") == "action_cls"
    assert "action_cls" in result["stages"].values()

    # control: the same wheel on sys.path but its .pth not processed -> the stock stage table
    control = _probe(target, process_pth=False)
    assert os.path.realpath(control["package_file"]).startswith(real_target + os.sep)
    assert not control["bootstrap_loaded"]
    assert "action_cls" not in control["stages"].values()
