"""Per-character log-probabilities in the shape completion APIs use.

A character model's tokens are its characters, so the log-probabilities an evaluation
harness asks for (OpenAI's legacy completions `logprobs`, with `echo` for the prompt's
own) come straight from `Predictor.score`: for each character, the natural log of the
probability the model gave it given everything before it, and the likeliest characters
at that step with theirs. They are the raw distribution's, before any temperature or
top-p: a log-likelihood must not depend on how a sample would have been drawn, and this
way they are exactly `score`'s and `predict`'s probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
from pydantic import Field

from charlm._config import check_int
from charlm.inference.results import Result, ScoreStep

if TYPE_CHECKING:
    from charlm.inference.predictor import Predictor

__all__ = ["TokenLogprobs", "cut_at_stop", "logprob_pieces", "text_logprobs"]


class TokenLogprobs(Result):
    """One entry per character, in OpenAI's legacy completions `logprobs` shape."""

    tokens: list[str]
    token_logprobs: list[float | None] = Field(
        description="ln p of each character given the text before it; null for the first "
        "character of a text (nothing predicts it)."
    )
    top_logprobs: list[dict[str, float] | None] = Field(
        description="The likeliest characters at each step and their ln p; null where "
        "there was no prediction."
    )
    text_offset: list[int] = Field(description="Each character's position in the text.")


def _ln(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def text_logprobs(
    predictor: Predictor, text: str, *, start: int = 0, top: int = 0
) -> TokenLogprobs:
    """The log-probabilities of the characters of `text` from position `start` on, each
    given all of `text` before it, with the `top` likeliest characters at each step."""
    out = TokenLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
    pieces = logprob_pieces(predictor, text, start=start, top=top)
    with torch.inference_mode():
        for piece in pieces:
            out.tokens.extend(piece.tokens)
            out.token_logprobs.extend(piece.token_logprobs)
            out.top_logprobs.extend(piece.top_logprobs)
            out.text_offset.extend(piece.text_offset)
    return out


def logprob_pieces(
    predictor: Predictor, text: str, *, start: int = 0, top: int = 0
) -> Iterator[TokenLogprobs]:
    """`text_logprobs` in pieces (`charlm.slices`), each yielding the entries of the
    characters it read; the arguments are checked now."""
    check_int("start", start, 0)
    check_int("top", top, 0)
    if start >= len(text):
        return iter(())
    if len(text) >= 2 and len(text) > max(1, start):
        steps = predictor.score_pieces(text, alternatives=top, start=max(1, start))
    else:
        predictor.query(text)  # the characters are still checked
        steps = None
    return _pieces(text[0] if start == 0 else None, steps, top)


def _pieces(
    first: str | None, steps: Iterator[list[ScoreStep]] | None, top: int
) -> Iterator[TokenLogprobs]:
    if first is not None:  # nothing predicts a text's first character
        yield TokenLogprobs(
            tokens=[first], token_logprobs=[None], top_logprobs=[None], text_offset=[0]
        )
    for piece in steps or ():
        yield TokenLogprobs(
            tokens=[s.char for s in piece],
            token_logprobs=[_ln(s.prob) for s in piece],
            top_logprobs=[{c.char: _ln(c.prob) for c in s.top[:top]} for s in piece],
            text_offset=[s.position for s in piece],
        )


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """`text` up to the first place any of `stops` begins (the stop itself left out), and
    whether one was found."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not found:
        return text, False
    return text[: min(found)], True
