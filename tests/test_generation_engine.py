"""The generation engine in one process: a real compute thread and a trained model."""

from __future__ import annotations

import asyncio

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
