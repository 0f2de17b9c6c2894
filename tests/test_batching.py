"""The /predict batcher on its own: a real model, the real compute thread, asyncio."""

import asyncio

from charlm import Prediction, Predictor, PredictQuery, UnknownCharacterError
from service.batching import BatchStats, PredictBatcher
from service.compute import ComputeThread


def run_together(
    predictor: Predictor, queries: list[PredictQuery], max_batch: int = 64
) -> tuple[list[Prediction | BaseException], BatchStats]:
    """Submit every query at once, as concurrent requests would."""

    async def main() -> tuple[list[Prediction | BaseException], BatchStats]:
        compute = ComputeThread()
        batcher = PredictBatcher(
            compute, max_batch=max_batch, wait_s=0.05, in_flight=lambda: len(queries)
        )
        try:
            answers = await asyncio.gather(
                *(batcher.predict(predictor, q) for q in queries), return_exceptions=True
            )
        finally:
            await batcher.close()
            compute.close()
        return list(answers), batcher.stats

    return asyncio.run(main())


def test_calls_that_arrive_together_share_a_batch(notes: Predictor) -> None:
    queries = [PredictQuery(t, top_k=3, length=5) for t in ("the ", "a bird", "seed", "rain")]
    answers, stats = run_together(notes, queries)
    assert (stats.batches, stats.requests, stats.largest) == (1, 4, 4)
    for q, a in zip(queries, answers, strict=True):
        assert isinstance(a, Prediction)
        assert a.continuation.text == notes.predict(q.text, q.top_k, q.length).continuation.text


def test_max_batch_splits_the_queue(notes: Predictor) -> None:
    queries = [PredictQuery("the " * (i + 1)) for i in range(5)]
    answers, stats = run_together(notes, queries, max_batch=2)
    assert (stats.batches, stats.largest) == (3, 2)
    assert all(isinstance(a, Prediction) for a in answers)


def test_a_bad_query_fails_alone(notes: Predictor) -> None:
    queries = [PredictQuery("the "), PredictQuery("the \u2603"), PredictQuery("rain")]
    answers, _ = run_together(notes, queries)
    assert isinstance(answers[1], UnknownCharacterError)
    for i in (0, 2):
        a = answers[i]
        assert isinstance(a, Prediction)
        assert a.next[0].char == notes.predict(queries[i].text).next[0].char
