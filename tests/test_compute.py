"""The compute thread on its own: sliced jobs take turns with other work, and stop when
their caller has gone."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Generator

import pytest
import torch

from charlm.slices import collect, finish, gather, steps_per_piece
from charlm_service.compute import SLICE_S, ComputeThread


class Pieces:
    """A computation of `n` pieces that records what ran, in which mode, and whether it
    was closed."""

    def __init__(
        self,
        n: int,
        log: list[str],
        name: str,
        gate: threading.Event | None = None,
        seconds: float = 0.0,
    ) -> None:
        self.n, self.log, self.name, self.gate, self.seconds = n, log, name, gate, seconds
        self.ran = 0
        self.closed = False
        self.inference = True

    def job(self) -> Generator[None, None, str]:
        try:
            for k in range(self.n):
                self.inference &= torch.is_inference_mode_enabled()
                self.ran += 1
                self.log.append(self.name)
                if k == 3 and self.gate is not None:  # hold its fourth piece until told
                    assert self.gate.wait(30)
                time.sleep(self.seconds)
                yield
        finally:
            self.closed = self.ran < self.n
        return f"{self.name} done"


def test_a_sliced_job_lets_others_run_between_its_pieces() -> None:
    """Without slicing, the other jobs would wait for all 50 pieces; here each runs after
    the piece in progress when it arrived (the long job has used its SLICE_S by then),
    a short sliced job runs all its pieces at once, and the long job then resumes."""
    log: list[str] = []
    queued = threading.Event()
    long = Pieces(50, log, "long", gate=queued, seconds=SLICE_S)
    short = Pieces(3, log, "short")

    async def main() -> tuple[str, str, str]:
        cpu = ComputeThread()
        try:
            running = asyncio.ensure_future(cpu.run_sliced(long.job()))
            while not log:  # the long job is under way
                await asyncio.sleep(0.001)
            plain = asyncio.ensure_future(cpu.run(lambda: log.append("plain") or "plain done"))
            sliced = asyncio.ensure_future(cpu.run_sliced(short.job()))
            await asyncio.sleep(0)  # both are queued
            queued.set()
            return await running, await plain, await sliced
        finally:
            cpu.close()

    assert asyncio.run(main()) == ("long done", "plain done", "short done")
    assert log.count("long") == 50
    # queued at the latest during the fourth piece (held until then): they run right
    # after the piece in progress, not after the 50
    first = log.index("plain")
    assert 1 <= first <= 5 and log[first : first + 4] == ["plain", "short", "short", "short"], log
    assert long.inference and not torch.is_inference_mode_enabled()


def test_two_sliced_jobs_take_turns() -> None:
    log: list[str] = []
    a, b = Pieces(30, log, "a", seconds=SLICE_S / 2), Pieces(30, log, "b", seconds=SLICE_S / 2)

    async def main() -> list[str]:
        cpu = ComputeThread()
        try:
            return list(await asyncio.gather(cpu.run_sliced(a.job()), cpu.run_sliced(b.job())))
        finally:
            cpu.close()

    assert asyncio.run(main()) == ["a done", "b done"]
    switches = sum(x != y for x, y in itertools.pairwise(log))
    assert switches >= 10, log  # in turns of a few pieces, not one after the other


def test_a_cancelled_sliced_job_stops_after_its_current_piece() -> None:
    log: list[str] = []
    slow = Pieces(10_000, log, "slow")

    def job() -> Generator[None, None, str]:
        for _ in slow.job():
            torch.randn(64, 64) @ torch.randn(64, 64)  # a little work per piece
            yield
        return "finished"

    async def main() -> int:
        cpu = ComputeThread()
        try:
            task = asyncio.ensure_future(cpu.run_sliced(job()))
            while slow.ran < 5:
                await asyncio.sleep(0.001)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await cpu.run(lambda: None)  # the thread has moved on
            return slow.ran
        finally:
            cpu.close()

    ran = asyncio.run(main())
    assert slow.closed
    assert ran < 10_000 and slow.ran == ran  # nothing ran after the close


def test_an_error_in_a_piece_reaches_the_caller() -> None:
    def job() -> Generator[None, None, int]:
        yield
        raise ValueError("piece 2")

    async def main() -> None:
        cpu = ComputeThread()
        try:
            with pytest.raises(ValueError, match="piece 2"):
                await cpu.run_sliced(job())
            assert await cpu.run(lambda: 7) == 7  # the thread goes on
        finally:
            cpu.close()

    asyncio.run(main())


def test_the_library_helpers() -> None:
    def lists() -> Generator[list[int], None, str]:
        yield [1, 2]
        yield []
        yield [3]
        return "end"

    assert gather(lists()) == ([1, 2, 3], "end")
    assert finish(collect(lists())) == ([1, 2, 3], "end")
    assert [steps_per_piece(b) for b in (0, 1, 64, 128, 1000)] == [256, 256, 4, 2, 1]
