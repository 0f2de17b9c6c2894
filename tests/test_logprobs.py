"""Per-character logprobs (`charlm.inference.logprobs`): the natural logs of `score`'s
probabilities, from any position, and stop texts."""

from __future__ import annotations

import math

import pytest

from charlm.errors import UnknownCharacterError
from charlm.inference import Predictor
from charlm.inference.logprobs import cut_at_stop, text_logprobs


def test_logprobs_are_the_logs_of_the_scores(notes: Predictor) -> None:
    text = "The rain came down on the hills."
    lp = text_logprobs(notes, text, top=3)
    steps = notes.score(text, alternatives=3).steps
    assert lp.tokens == list(text) and lp.text_offset == list(range(len(text)))
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert lp.token_logprobs[1:] == [math.log(s.prob) for s in steps]
    assert lp.top_logprobs[1:] == [{c.char: math.log(c.prob) for c in s.top} for s in steps]
    later = text_logprobs(notes, text, start=10, top=0)
    assert later.token_logprobs == lp.token_logprobs[10:] and later.text_offset == list(
        range(10, len(text))
    )
    assert later.top_logprobs == [{}] * (len(text) - 10)


def test_short_and_empty_texts(notes: Predictor) -> None:
    one = text_logprobs(notes, "T")
    assert (one.tokens, one.token_logprobs, one.top_logprobs) == (["T"], [None], [None])
    assert text_logprobs(notes, "The", start=3).tokens == []
    assert text_logprobs(notes, "").tokens == []
    with pytest.raises(UnknownCharacterError):
        text_logprobs(notes, "€")


@pytest.mark.parametrize(
    ("text", "stops", "want"),
    [
        ("abc.def", ["."], ("abc", True)),
        ("abc.def", [".", "c"], ("ab", True)),
        ("abc", ["x", ""], ("abc", False)),
        ("abc", [], ("abc", False)),
        (".abc", ["."], ("", True)),
    ],
)
def test_cut_at_stop(text: str, stops: list[str], want: tuple[str, bool]) -> None:
    assert cut_at_stop(text, stops) == want
