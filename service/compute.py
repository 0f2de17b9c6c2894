"""The one thread that runs every model computation of a server process.

Model work (loading checkpoints, /predict batches, /score, /generate steps) never runs
on the event loop, and never on more than one thread: PyTorch's CPU kernels parallelise
with OpenMP, which keeps a team of worker threads for each thread that calls into it.
Once two threads of a process have done so, there are more OpenMP threads than cores on
a small machine and GNU OpenMP stops spinning between parallel regions, so every small
kernel pays for waking its team: measured on 2 cores, a batch of 32 /predict queries
took 4x as long on a second thread as on the first. One thread keeps one team.

Jobs run one at a time in the order they were submitted. `waiting` tells a long job
(the generation engine's steps) that others are queued, so that it can hand the thread
over after its current step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["ComputeThread"]

P = ParamSpec("P")
T = TypeVar("T")

_Job = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class ComputeThread:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Jobs submitted and not yet started."""
        return self._jobs.qsize()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on the compute thread, awaited from the event loop.

        A job whose caller has stopped waiting before it starts is skipped.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start()
        self._jobs.put((functools.partial(fn, *args, **kwargs), future, loop))
        return await future

    def close(self) -> None:
        """Finish the job in progress, cancel the queued ones, and end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)
        thread.join()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="charlm-compute", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future, loop = job
            if future.cancelled():
                continue
            try:
                result = fn()
            except BaseException as error:  # handed to the caller, whatever it is
                _settle_soon(loop, future, error=error)
            else:
                _settle_soon(loop, future, result=result)
        while True:  # closing: what is still queued will not run
            try:
                rest = self._jobs.get_nowait()
            except queue.Empty:
                return
            if rest is not None:
                _settle_soon(rest[2], rest[1], cancel=True)


def _settle_soon(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    *,
    result: Any = None,
    error: BaseException | None = None,
    cancel: bool = False,
) -> None:
    def settle() -> None:
        if future.done():  # its caller has gone
            return
        if cancel:
            future.cancel()
        elif error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    with contextlib.suppress(RuntimeError):  # a closed event loop: nobody is waiting
        loop.call_soon_threadsafe(settle)
