"""One writer per checkpoint directory.

A training run holds an exclusive `flock` on `<directory>/.lock` from before it looks
at the directory until it ends. A second run on the same directory (the same `--name`,
or `--overwrite` while the first still runs) is refused at once with an error naming
the first run's process. The kernel releases the lock when the process ends however it
ends (SIGKILL included), so a crash never leaves a stale lock behind. Readers (the
service, `charlm predict`) take no lock: the manifest is replaced atomically.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from pathlib import Path
from types import TracebackType

from charlm.errors import CheckpointError, CheckpointLockedError

__all__ = ["LOCK_FILE", "RunLock"]

LOCK_FILE = ".lock"


class RunLock:
    """`with RunLock(directory): ...` holds the directory's lock for the block."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise CheckpointError(
                f"{self.directory}: cannot create the checkpoint directory ({e.strerror or e})"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise CheckpointLockedError(
                f"{self.directory} is being written by another training run{holder}; wait for "
                "it to finish, or train into another directory with --name"
            ) from None
        except OSError as e:  # a file system without locks: go on unguarded
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                os.close(fd)
                raise CheckpointError(f"{self.directory}: cannot lock it ({e.strerror})") from e
        with contextlib.suppress(OSError):
            note = {"pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(note).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        note = json.loads(os.pread(fd, 256, 0) or b"{}")
        return f" (process {int(note['pid'])}, since {str(note['since'])[:19]})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""
