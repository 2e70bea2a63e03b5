"""The e2e runner's safety net: a command that hangs, or leaves a process behind holding its pipes, cannot hang
the suite (the last CI run sat at 94 % until its 90-minute limit)."""

import os
import sys
import time

from .helpers import run_bounded

# a parent that starts a child holding stdout/stderr open, then hangs itself
HANGS = (
    "import subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
    "print('started', flush=True); time.sleep(600)"
)
# a parent that exits at once and leaves that child behind, still holding the pipes
LEAVES_A_CHILD = (
    "import subprocess, sys; "
    "code = 'import os, time; print(os.getpid(), flush=True); time.sleep(600)'; "
    "p = subprocess.Popen([sys.executable, '-c', code]); "
    "print('parent done', flush=True)"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper is gone for our purpose
        return f.read().split()[2] != "Z"


def test_a_hanging_command_is_stopped_with_its_stacks_and_output():
    started = time.monotonic()
    proc = run_bounded([sys.executable, "-c", HANGS], timeout=5, env=dict(os.environ, PYTHONFAULTHANDLER="1"))
    assert time.monotonic() - started < 60
    assert proc.returncode == 124 and "started" in proc.stdout
    assert "ran past its 5 s timeout" in proc.stderr
    assert "Fatal Python error: Aborted" in proc.stderr  # the SIGABRT made faulthandler print the stacks


def test_a_child_left_behind_does_not_keep_the_runner_waiting():
    started = time.monotonic()
    proc = run_bounded([sys.executable, "-c", LEAVES_A_CHILD], timeout=5)
    assert time.monotonic() - started < 60
    assert "parent done" in proc.stdout
    child = next(int(word) for word in proc.stdout.split() if word.isdigit())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
