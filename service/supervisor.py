"""The processes of `charlm serve`: one uvicorn server, or N workers under `Supervisor`.

With `--workers N` (N > 1) the parent binds the listening socket once and uvicorn's
worker supervisor starts N worker processes on it; every half second it checks that each
is alive and starts a new one in place of a worker that has died. The workers share one
directory of metrics (service/metrics.py). A worker that stops cleanly marks itself dead
there; one that is killed (SIGKILL, the kernel's OOM killer, a crash in native code)
cannot, and its live gauges (requests in progress, models loaded, its memory) would stay
in every scrape and in /health's `pending` for as long as the server runs. So
`Supervisor` marks it dead as soon as the worker's exit status is collected.

The supervisor does it, rather than whichever worker answers a scrape, because it is the
one process that knows a worker has died: it has collected the worker's exit status, so
nothing is guessed from a PID (a reaped worker's PID may already belong to another
process, the replacement included, and a worker not yet reaped still looks alive to
`kill(pid, 0)`), and the series go within half a second of the worker, before a
replacement starts, not at the next scrape. This process imports prometheus-client's
multiprocess helpers but never service/metrics.py: the metrics made at that import would
write files of the parent's own, and a scrape would list the parent as a worker.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import uvicorn
from prometheus_client import multiprocess
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import Process

from .protocol import PROTOCOL
from .settings import ServiceSettings

__all__ = ["APP", "GRACEFUL_SHUTDOWN_S", "Supervisor", "serve"]

APP = "charlm_service.app:create_app_from_env"
"""The app factory each server process calls (its settings come from CHARLM_* variables)."""
GRACEFUL_SHUTDOWN_S = 30
"""On SIGTERM, how long requests in progress may take to finish."""
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # as service/metrics.py names it


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor, which also marks a dead worker's metrics dead."""

    def keep_subprocess_alive(self) -> None:
        workers = list(self.processes)
        _mark_dead(workers)  # those that have died, before anything replaces them
        super().keep_subprocess_alive()  # replaces the dead; kills and replaces the hung
        _mark_dead(workers)  # those it killed


def _mark_dead(workers: list[Process]) -> None:
    """Take the workers that have ended out of the live sums: their live gauges' files
    go; their counts stay in the totals."""
    directory = os.environ.get(MULTIPROC_DIR)
    for worker in workers:
        # `exitcode` collects the exit status of a worker that has ended (waitpid).
        if directory and worker.exitcode is not None and worker.pid is not None:
            multiprocess.mark_process_dead(worker.pid, directory)  # type: ignore[no-untyped-call]


def serve(settings: ServiceSettings) -> None:
    """Serve until stopped: in this process with one worker, else under `Supervisor`."""
    options: dict[str, Any] = {
        "factory": True,
        "http": PROTOCOL,  # httptools, refusing in JSON
        "loop": "auto",  # uvloop where it is installed (everywhere but Windows)
        "host": settings.host,
        "port": settings.port,
        "workers": settings.workers,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
    if settings.workers == 1:
        uvicorn.run(APP, **options)
        return
    config = uvicorn.Config(APP, **options)
    with contextlib.suppress(KeyboardInterrupt):  # before the supervisor takes the signals
        Supervisor(config, sockets=[config.bind_socket()]).run()
