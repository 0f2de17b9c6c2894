"""The /predict batcher on its own: a real model, the real compute thread, asyncio."""

import asyncio
from collections.abc import Sequence

import pytest

from charlm import InputError, Prediction, Predictor, PredictQuery
from charlm.slices import Sliced
from charlm_service.batching import BatchStats, PredictBatcher
from charlm_service.compute import ComputeThread


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
    texts = ("the ", "a bird", "seed", "rain")
    queries = [notes.query(t, top_k=3, continuation_length=5) for t in texts]
    answers, stats = run_together(notes, queries)
    assert (stats.batches, stats.requests, stats.largest) == (1, 4, 4)
    for q, a in zip(queries, answers, strict=True):
        assert isinstance(a, Prediction)
        assert a.continuation == notes.predict(q.text, 3, 5).continuation


def test_max_batch_splits_the_queue(notes: Predictor) -> None:
    queries = [notes.query("the " * (i + 1)) for i in range(5)]
    answers, stats = run_together(notes, queries, max_batch=2)
    assert (stats.batches, stats.largest) == (3, 2)
    assert all(isinstance(a, Prediction) for a in answers)


class FailsOnBoom(Predictor):
    """The notes model, except that a batch holding the text 'boom' fails as a whole,
    after its pieces have run."""

    def predict_pieces(self, queries: Sequence[PredictQuery]) -> Sliced[list[Prediction]]:
        answers = yield from super().predict_pieces(queries)
        if any(q.text == "boom" for q in queries):
            raise RuntimeError("boom")
        return answers


def test_a_failing_query_fails_alone(notes: Predictor) -> None:
    predictor = FailsOnBoom(notes.model, notes.vocab)
    queries = [notes.query(t) for t in ("the ", "boom", "rain")]
    answers, _ = run_together(predictor, queries)
    assert isinstance(answers[1], RuntimeError)
    for i in (0, 2):
        a = answers[i]
        assert isinstance(a, Prediction)
        assert a.next[0].char == notes.predict(queries[i].text).next[0].char


def test_a_bad_text_never_reaches_a_batch(notes: Predictor) -> None:
    with pytest.raises(InputError, match="'\\u2603' at position 4"):
        notes.query("the \u2603")
