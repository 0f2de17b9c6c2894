"""The one thread that runs every model computation of a server process.

Model work (loading checkpoints, /predict batches, /score, /generate steps) never runs
on the event loop, and never on more than one thread: PyTorch's CPU kernels parallelise
with OpenMP, which keeps a team of worker threads for each thread that calls into it.
Once two threads of a process have done so, there are more OpenMP threads than cores on
a small machine and GNU OpenMP stops spinning between parallel regions, so every small
kernel pays for waking its team: measured on 2 cores, a batch of 32 /predict queries
took 4x as long on a second thread as on the first. One thread keeps one team.

Jobs run in the order they were submitted. A plain job (`run`) runs whole. A sliced
job (`run_sliced`: a computation in pieces, `charlm.slices`) runs piece after piece;
once it has used `SLICE_S` of the thread in all, it goes to the back of the queue after
each piece whenever another job is waiting. So a short job (a /predict) runs to its end
once it starts, it waits about half a piece (a few milliseconds) behind the longest
request, and long requests take turns piece by piece. Each piece runs under
inference mode; once a long job ends, the memory it freed is given back to the system.
A job whose caller has stopped waiting (its client has gone) is not started, and a
sliced one is closed after the piece in progress. `waiting` tells a long plain job (the
generation engine's steps) that others are queued, so that it can hand the thread over
after its current step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from charlm.runtime import release_freed_memory
from charlm.slices import run_piece

__all__ = ["ComputeThread"]

P = ParamSpec("P")
T = TypeVar("T")


_LONG = 64
"""Pieces after which a finished job's freed memory is given back to the system."""
SLICE_S = 0.01
"""Time on the thread a sliced job may use before it takes turns with waiting jobs: a
short one (a /predict's few pieces) ends without yielding."""


@dataclass(eq=False)
class _Job:
    work: Callable[[], Any] | Generator[None, None, Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    pieces: int = 0
    used: float = 0.0  # seconds on the thread so far


class ComputeThread:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Jobs submitted and not yet started, or waiting for their next piece."""
        return self._jobs.qsize()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on the compute thread, awaited from the event loop.

        A job whose caller has stopped waiting before it starts is skipped.
        """
        return await self._submit(functools.partial(fn, *args, **kwargs))

    async def run_sliced(self, job: Generator[None, None, T]) -> T:
        """A computation in pieces (`charlm.slices`) on the compute thread, taking turns
        with other work; its result. Cancelling the call (a client that has gone) closes
        it after the piece in progress."""
        return await self._submit(job)

    async def _submit(self, work: Callable[[], T] | Generator[None, None, T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start()
        self._jobs.put(_Job(work, future, loop))
        try:
            return await future
        except asyncio.CancelledError:
            future.cancel()  # seen by the compute thread at the next piece
            raise

    def close(self) -> None:
        """Finish the piece or job in progress, cancel the queued ones, and end the
        thread."""
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
            if isinstance(job.work, Generator):
                self._pieces(job, job.work)
            elif not job.future.cancelled():
                try:
                    result = job.work()
                except BaseException as error:  # handed to the caller, whatever it is
                    _settle_soon(job.loop, job.future, error=error)
                else:
                    _settle_soon(job.loop, job.future, result=result)
        while True:  # closing: what is still queued will not run
            try:
                rest = self._jobs.get_nowait()
            except queue.Empty:
                return
            if rest is not None:
                if isinstance(rest.work, Generator):
                    rest.work.close()
                _settle_soon(rest.loop, rest.future, cancel=True)

    def _pieces(self, job: _Job, work: Generator[None, None, Any]) -> None:
        """Run `work`'s pieces until it ends, its caller has gone, or another job waits
        (then it goes to the back of the queue)."""
        while True:
            if job.future.cancelled():
                work.close()
                break
            began = time.perf_counter()
            try:
                done, result = run_piece(work)
            except BaseException as error:  # handed to the caller, whatever it is
                _settle_soon(job.loop, job.future, error=error)
                break
            if done:
                _settle_soon(job.loop, job.future, result=result)
                break
            job.pieces += 1
            job.used += time.perf_counter() - began
            if job.used >= SLICE_S and self._jobs.qsize():
                self._jobs.put(job)
                return
        if job.pieces >= _LONG:  # a long request's temporaries: back to the system
            release_freed_memory()


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
