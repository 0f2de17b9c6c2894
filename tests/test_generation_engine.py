"""The generation engine in one process: a real compute thread and a trained model."""

from __future__ import annotations

import asyncio
import time

from charlm import Predictor, SampleConfig
from charlm_service.compute import ComputeThread
from charlm_service.generation import GenerationEngine


def test_a_caller_gone_while_its_prompt_is_read_leaves_no_generation(notes: Predictor) -> None:
    async def scenario() -> tuple[int, int, int]:
        compute = ComputeThread()
        engine = GenerationEngine(compute)
        config = SampleConfig(length=1_000_000_000, seed=1)
        # Keep the compute thread busy so that the join is still queued or running
        # when its caller goes.
        busy = asyncio.ensure_future(compute.run(notes.score, "the rain " * 200))
        opening = asyncio.ensure_future(engine.open(notes, "the " * 500, config))
        await asyncio.sleep(0)
        opening.cancel()
        await busy
        for _ in range(500):  # the abandoned sequence joins, is registered, and dropped
            await asyncio.sleep(0.01)
            if engine.stats.generations and not engine.stats.active and not engine._decodings:
                break
        kept = engine.stats.active, len(engine._decodings), engine.stats.generations
        await engine.close()
        compute.close()
        return kept

    active, decodings, generations = asyncio.run(scenario())
    assert (active, decodings) == (0, 0)
    assert generations == 1  # it did join: the drop, not a skipped job, cleaned it up


def test_streams_get_their_characters_and_a_reader_that_stops_drops_its_generation(
    notes: Predictor,
) -> None:
    async def scenario() -> tuple[str, str, int]:
        compute = ComputeThread()
        engine = GenerationEngine(compute)
        short = await engine.open(notes, "the ", SampleConfig(length=50, seed=3))
        endless = await engine.open(notes, "a ", SampleConfig(length=1_000_000_000, seed=4))
        text = "".join([c async for piece in short.pieces() for c in piece])
        got = ""
        async for piece in endless.pieces():
            got += "".join(piece)
            if len(got) >= 100:
                break
        endless.cancel()
        for _ in range(500):
            await asyncio.sleep(0.01)
            if not engine.stats.active:
                break
        active = engine.stats.active
        await engine.close()
        compute.close()
        return text, got, active

    text, got, active = asyncio.run(scenario())
    assert text == notes.generate("the ", SampleConfig(length=50, seed=3)).text
    assert got[:100] == notes.generate("a ", SampleConfig(length=100, seed=4)).text
    assert active == 0


def test_generations_joining_a_running_batch_lose_no_characters(notes: Predictor) -> None:
    """Characters made in the step right after a join reach their reader, however the
    event loop orders the join's answer and the step's (a loop that is often busy, as
    under load, sees both at once)."""

    async def scenario() -> list[str]:
        compute = ComputeThread()
        engine = GenerationEngine(compute)
        endless = await engine.open(notes, "a ", SampleConfig(length=1_000_000_000, seed=4))

        async def one(seed: int) -> str:
            stream = await engine.open(notes, "the ", SampleConfig(length=30, seed=seed))
            return "".join([c async for piece in stream.pieces() for c in piece])

        done = False

        async def busy_loop() -> None:  # holds the event loop 20 ms at a time
            while not done:
                time.sleep(0.02)
                await asyncio.sleep(0)

        hog = asyncio.ensure_future(busy_loop())
        texts = await asyncio.gather(*(one(seed) for seed in range(12)))
        done = True
        await hog
        endless.cancel()
        await engine.close()
        compute.close()
        return list(texts)

    texts = asyncio.run(scenario())
    alone = [notes.generate("the ", SampleConfig(length=30, seed=seed)).text for seed in range(12)]
    assert [len(t) for t in texts] == [30] * 12
    assert texts == alone
