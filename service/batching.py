"""Dynamic batching of /predict: concurrent calls share one forward pass.

A call puts its query on a queue and waits. One task on the event loop takes
everything queued, waits up to `wait_s` for more while other /predict requests are
still on their way in (none when the server is idle, so a lone call never waits), then
answers the whole batch with `Predictor.predict_pieces` on the compute thread, one
call per model, in pieces that take turns with other work. Calls that arrive meanwhile
form the next batch. A call with a long text or a long continuation is answered on its
own, beside the batches (its pieces taking turns with theirs), so that it holds up
neither the next batch nor the other answers of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from charlm import Prediction, Predictor, PredictQuery

from .compute import ComputeThread
from .metrics import BATCH, BATCH_LARGEST

__all__ = ["LONG_CONTINUATION", "LONG_TEXT", "BatchStats", "PredictBatcher", "is_long"]

LONG_TEXT = 1024
"""Characters of text above which a call is answered on its own, beside the batches."""
LONG_CONTINUATION = 256
"""Characters of continuation above which a call is answered on its own."""


@dataclass
class BatchStats:
    batches: int = 0
    requests: int = 0
    largest: int = 0


@dataclass
class _Call:
    predictor: Predictor
    query: PredictQuery
    future: asyncio.Future[Prediction] = field(repr=False)


class PredictBatcher:
    """Collects concurrent predict calls into batches (one event loop per process)."""

    def __init__(
        self,
        compute: ComputeThread,
        *,
        max_batch: int,
        wait_s: float,
        in_flight: Callable[[], int],
    ) -> None:
        self.compute = compute
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.in_flight = in_flight  # /predict requests in progress, these included
        self.stats = BatchStats()
        self._queue: list[_Call] = []
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._alone: set[asyncio.Task[None]] = set()

    async def predict(self, predictor: Predictor, query: PredictQuery) -> Prediction:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._arrived = asyncio.Event()
            self._task = loop.create_task(self._serve())
        call = _Call(predictor, query, loop.create_future())
        self._queue.append(call)
        assert self._arrived is not None
        self._arrived.set()
        return await call.future

    async def close(self) -> None:
        for task in [self._task, *self._alone]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for call in self._queue:
            call.future.cancel()
        self._queue.clear()

    async def _serve(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            deadline = loop.time() + self.wait_s
            while len(self._queue) < min(self.max_batch, self.in_flight()):
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    break
                self._arrived.clear()
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            if self._queue:
                self._arrived.set()  # the rest form the next batch at once
            batch = [call for call in batch if not call.future.done()]  # callers gone
            for call in [c for c in batch if is_long(c.query)]:  # answered beside the batches
                batch.remove(call)
                task = loop.create_task(self._answer([call]))
                self._alone.add(task)
                task.add_done_callback(self._alone.discard)
            if not batch:
                continue
            self.stats.batches += 1
            self.stats.requests += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))
            BATCH.observe(len(batch))
            BATCH_LARGEST.set(self.stats.largest)
            await self._answer(batch)

    async def _answer(self, batch: list[_Call]) -> None:
        groups: dict[int, list[_Call]] = {}
        for call in batch:
            groups.setdefault(id(call.predictor), []).append(call)
        for calls in groups.values():
            predictor = calls[0].predictor
            queries = [call.query for call in calls]
            try:
                answers = await self.compute.run_sliced(predictor.predict_pieces(queries))
            except Exception as error:
                if len(calls) == 1:
                    _settle(calls[0], error=error)
                else:  # one bad query must not fail the others: answer each alone
                    await self._answer_alone(calls)
                continue
            for call, answer in zip(calls, answers, strict=True):
                _settle(call, answer)

    async def _answer_alone(self, calls: list[_Call]) -> None:
        for call in calls:
            try:
                answer = await self.compute.run_sliced(call.predictor.predict_pieces([call.query]))
            except Exception as error:
                _settle(call, error=error)
            else:
                _settle(call, answer[0])


def is_long(query: PredictQuery) -> bool:
    """A query that would hold up a batch's answers: a long text to read, or a long
    continuation to step (the batch's calls are answered together, at its end)."""
    return len(query.text) > LONG_TEXT or query.continuation_length > LONG_CONTINUATION


def _settle(call: _Call, answer: Prediction | None = None, error: Exception | None = None) -> None:
    if call.future.done():  # the caller has gone
        return
    if error is not None:
        call.future.set_exception(error)
    else:
        assert answer is not None
        call.future.set_result(answer)
