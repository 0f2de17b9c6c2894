"""Continuous batching of /generate: every generation in progress advances together.

A /generate call joins the engine (its prompt is checked, then read on the compute
thread in pieces that take turns with other work) and gets a `Stream` of characters.
One task on the event loop keeps the generations going: it hands the compute thread
one job that steps every active generation of every model (one batched model step per
model per character, through `charlm.inference.Decoding`), for up to `slice_s`, or
just one step when other work is queued for the compute thread (a /predict batch, a
piece of a /score, a load). So other requests wait at most one step for the thread,
however long the generations are, and several generations cost little more than one.
Generations join and leave between any two steps; a stream whose client has gone is
dropped before the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from charlm import Predictor, SampleConfig
from charlm.inference import Decoding, Sequence
from charlm.inference.decoding import Start, start_pieces
from charlm.slices import Sliced

from .compute import ComputeThread
from .metrics import GEN_ACTIVE, GEN_LARGEST, GEN_STARTED, GEN_STEPS, GENERATED

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

    def __init__(self) -> None:
        self.closed = False  # no more pieces will come, or the reader has gone
        self._pieces: asyncio.Queue[list[str] | BaseException | None] = asyncio.Queue()

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


_Produced = list[tuple[Stream, list[str], bool]]  # (stream, characters, finished)


class GenerationEngine:
    """Runs every /generate of a process (one event loop per process).

    Each stream is handed to the compute thread with its prompt and is known there
    from the moment its sequence joins, so no character can be made before its reader
    exists; the compute thread drops the sequence of a stream whose reader has gone.
    """

    def __init__(self, compute: ComputeThread, *, slice_s: float = 0.03) -> None:
        self.compute = compute
        self.slice_s = slice_s
        self.stats = GenerationStats()
        self._live = 0  # sequences joined and not yet ended (event loop)
        self._task: asyncio.Task[None] | None = None
        # The compute thread's own: decodings by id(predictor), and each sequence's reader.
        self._decodings: dict[int, Decoding] = {}
        self._readers: dict[Sequence, Stream] = {}

    async def open(self, predictor: Predictor, prompt: str, config: SampleConfig) -> Stream:
        """Start a generation; raises the library's error for a bad prompt.

        A caller that goes away while its prompt is being read leaves no generation
        behind: its sequence is dropped before the next step.
        """
        start = start_pieces(predictor, prompt, config)  # the prompt is checked here
        stream = Stream()
        self._live += 1  # counted before its sequence can end, so the count never falls short
        job = asyncio.ensure_future(self.compute.run_sliced(self._join(predictor, start, stream)))
        try:
            joined = await asyncio.shield(job)
        except asyncio.CancelledError:
            stream.cancel()  # if its sequence joins, it is dropped before the next step
            job.add_done_callback(self._joined)
            raise
        except Exception:
            self._joined(job)
            raise
        self._joined(job)
        if not joined:  # nothing to make (length 0)
            stream._put([], done=True)
        return stream

    def _joined(self, job: asyncio.Future[bool]) -> None:
        """Uncount a generation that did not join; keep the steps going for one that did."""
        if job.cancelled() or job.exception() is not None or not job.result():
            self._live -= 1
        else:
            self.stats.generations += 1
            GEN_STARTED.inc()
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._run())
        self.stats.active = self._live
        GEN_ACTIVE.set(self._live)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for stream in await self.compute.run(self._forget):
            stream._put([], done=True)
        self._live = 0

    async def _run(self) -> None:
        while self._live > 0:
            try:
                produced, ended = await self.compute.run(self._advance)
            except Exception as error:  # a failed step ends every generation it held
                for stream in await self.compute.run(self._forget):
                    stream._put(error, done=True)
                self._live = self.stats.active = 0
                GEN_ACTIVE.set(0)
                break
            for stream, chars, finished in produced:
                stream._put(chars, finished)
            self._live -= ended
            self.stats.active = self._live
            GEN_ACTIVE.set(self._live)

    # -- on the compute thread -----------------------------------------------------

    def _join(self, predictor: Predictor, start: Sliced[Start], stream: Stream) -> Sliced[bool]:
        """Read the prompt in pieces, then add the generation (in one piece, so that no
        step runs between); False when it has nothing to make."""
        begun = yield from start
        decoding = self._decodings.get(id(predictor)) or Decoding(predictor)
        sequence = decoding.add(begun)
        if sequence.done:
            return False
        self._decodings[id(predictor)] = decoding
        self._readers[sequence] = stream
        return True

    def _forget(self) -> list[Stream]:
        """End every generation; their streams."""
        streams = list(self._readers.values())
        self._readers.clear()
        self._decodings.clear()
        return streams

    def _advance(self) -> tuple[_Produced, int]:
        """Drop the sequences whose readers have gone, then step every generation until
        the slice is used up or other work is waiting (at least one step). Returns the
        characters made for each stream, and how many sequences ended."""
        ended = 0
        for decoding in self._decodings.values():
            for seq in [s for s in decoding.sequences if self._readers[s].closed]:
                decoding.drop(seq)
                del self._readers[seq]
                ended += 1
        made: dict[Sequence, list[str]] = {}
        end = time.perf_counter() + self.slice_s
        while self._decodings:
            for key, decoding in list(self._decodings.items()):
                batch = decoding.step()
                self.stats.steps += bool(batch)
                GEN_STEPS.inc(bool(batch))
                self.stats.characters += len(batch)
                GENERATED.inc(len(batch))
                self.stats.largest = max(self.stats.largest, len(batch))
                GEN_LARGEST.set(self.stats.largest)
                for seq, char in batch:
                    made.setdefault(seq, []).append(char)
                if not len(decoding):
                    del self._decodings[key]
            if self.compute.waiting or time.perf_counter() >= end:
                break
        produced: _Produced = []
        for seq, chars in made.items():
            stream = self._readers[seq] if not seq.done else self._readers.pop(seq)
            produced.append((stream, chars, seq.done))
            ended += seq.done
        return produced, ended
