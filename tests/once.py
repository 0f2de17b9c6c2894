"""Work that a test run does once, however many xdist workers it has.

A session-scoped fixture runs once in each worker: two workers that both reach the
tests of a trained checkpoint would each train it. `built_once` gives every worker the
same directory, built by the first worker that asks for it while the others wait on a
file lock (the directory xdist's workers share, the parent of each one's base temp).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """The directory `name` of this test run, after `build(directory)` has filled it.

    `build` runs in the first process to ask; a build that raised is cleared away and
    tried again by the next one, so each failure is reported where it happened. The
    built directory is shared: the tests that take it read it and write elsewhere.
    """
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent  # the run's directory, above each worker's own
    directory, done = root / f"once-{name}", root / f"once-{name}.done"
    with open(root / f"once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            build(directory)
            done.touch()
    return directory
