"""Continuous batching of /generate: every generation in progress advances together.

A /generate call joins the engine (its prompt is checked and read on the compute
thread) and gets a `Stream` of characters. One task on the event loop keeps the
generations going: it hands the compute thread one job that steps every active
generation of every model (one batched model step per model per character, through
`charlm.inference.Decoding`), for up to `slice_s`, or just one step when other work is
queued for the compute thread (a /predict batch, a /score, a load). So other requests
wait at most one step for the thread, however long the generations are, and several
generations cost little more than one. Generations join and leave between any two
steps; a stream whose client has gone is dropped before the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from charlm import Predictor, SampleConfig
from charlm.inference import Decoding, Sequence

from .compute import ComputeThread

__all__ = ["GenerationEngine", "GenerationStats", "Stream"]


@dataclass
class GenerationStats:
    active: int = 0
    generations: int = 0
    steps: int = 0
    characters: int = 0
    largest: int = 0


class Stream:
    """The characters of one generation, as the engine makes them."""

    def __init__(self, sequence: Sequence) -> None:
        self.sequence = sequence
        self.closed = sequence.done  # no more pieces will come, or the reader has gone
        self._pieces: asyncio.Queue[list[str] | BaseException | None] = asyncio.Queue()
        if self.closed:
            self._pieces.put_nowait(None)

    async def pieces(self) -> AsyncIterator[list[str]]:
        """Pieces of one or more characters, in order, until the generation ends."""
        while (piece := await self._pieces.get()) is not None:
            if isinstance(piece, BaseException):
                raise piece
            yield piece

    def cancel(self) -> None:
        """The reader has gone: stop making this generation."""
        self.closed = True

    def _put(self, piece: list[str] | BaseException, done: bool) -> None:
        self._pieces.put_nowait(piece)
        if done:
            self.closed = True
            self._pieces.put_nowait(None)


class GenerationEngine:
    """Runs every /generate of a process (one event loop per process)."""

    def __init__(self, compute: ComputeThread, *, slice_s: float = 0.03) -> None:
        self.compute = compute
        self.slice_s = slice_s
        self.stats = GenerationStats()
        self._streams: dict[Sequence, Stream] = {}
        self._decodings: dict[int, Decoding] = {}  # by id(predictor); compute thread only
        self._task: asyncio.Task[None] | None = None

    async def open(self, predictor: Predictor, prompt: str, config: SampleConfig) -> Stream:
        """Start a generation; raises the library's error for a bad prompt.

        A caller that goes away while its prompt is being read leaves no generation
        behind: the joined sequence is dropped before the next step.
        """
        job = asyncio.ensure_future(self.compute.run(self._join, predictor, prompt, config))
        try:
            sequence = await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(self._abandon)
            raise
        return self._register(sequence)

    def _register(self, sequence: Sequence) -> Stream:
        stream = Stream(sequence)
        self.stats.generations += 1
        if not stream.closed:
            self._streams[sequence] = stream
            self.stats.active = len(self._streams)
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._run())
        return stream

    def _abandon(self, job: asyncio.Future[Sequence]) -> None:
        if not job.cancelled() and job.exception() is None:
            self._register(job.result()).cancel()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for stream in self._streams.values():
            stream._put([], done=True)
        self._streams.clear()

    async def _run(self) -> None:
        while self._streams:
            gone = [seq for seq, stream in self._streams.items() if stream.closed]
            for seq in gone:
                del self._streams[seq]
            try:
                produced = await self.compute.run(self._advance, gone)
            except Exception as error:  # a failed step ends every generation it held
                for stream in self._streams.values():
                    stream._put(error, done=True)
                self._streams.clear()
                await self.compute.run(self._decodings.clear)
                break
            for seq, chars in produced.items():
                reader = self._streams.get(seq)
                if reader is None:
                    continue
                reader._put(chars, seq.done)
                if seq.done:
                    del self._streams[seq]
            self.stats.active = len(self._streams)

    # -- on the compute thread -----------------------------------------------------

    def _join(self, predictor: Predictor, prompt: str, config: SampleConfig) -> Sequence:
        decoding = self._decodings.get(id(predictor)) or Decoding(predictor)
        sequence = decoding.join(prompt, config)
        if len(decoding):
            self._decodings[id(predictor)] = decoding
        return sequence

    def _advance(self, gone: list[Sequence]) -> dict[Sequence, list[str]]:
        """Drop `gone`, then step every generation until the slice is used up or other
        work is waiting (at least one step)."""
        for seq in gone:
            for decoding in self._decodings.values():
                decoding.drop(seq)
        produced: dict[Sequence, list[str]] = {}
        end = time.perf_counter() + self.slice_s
        while self._decodings:
            for key, decoding in list(self._decodings.items()):
                batch = decoding.step()
                self.stats.steps += bool(batch)
                self.stats.characters += len(batch)
                self.stats.largest = max(self.stats.largest, len(batch))
                for seq, char in batch:
                    produced.setdefault(seq, []).append(char)
                if not len(decoding):
                    del self._decodings[key]
            if self.compute.waiting or time.perf_counter() >= end:
                break
        return produced
