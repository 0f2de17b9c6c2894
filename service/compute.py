"""The one thread that runs every model computation of a server process.

Model work (loading checkpoints, /predict batches, /score, /generate) never runs on the
event loop, and never on more than one thread: PyTorch's CPU kernels parallelise with
OpenMP, which keeps a team of worker threads for each thread that calls into it. Once
two threads of a process have done so, there are more OpenMP threads than cores on a
small machine and GNU OpenMP stops spinning between parallel regions, so every small
kernel pays for waking its team: measured on 2 cores, a batch of 32 /predict queries
took 4x as long on a second thread as on the first. One thread keeps one team.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["ComputeThread"]

P = ParamSpec("P")
T = TypeVar("T")


class ComputeThread:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="charlm-compute")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` on the compute thread, awaited from the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
