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
from typing import TYPE_CHECKING

from pydantic import Field

from charlm._config import check_int
from charlm.inference.results import Result

if TYPE_CHECKING:
    from charlm.inference.predictor import Predictor

__all__ = ["TokenLogprobs", "cut_at_stop", "text_logprobs"]


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
    check_int("start", start, 0)
    check_int("top", top, 0)
    chars = list(text)
    out = TokenLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
    if start >= len(chars):
        return out
    steps = []
    if len(chars) >= 2 and len(chars) > max(1, start):
        steps = predictor.score(text, alternatives=top, start=max(1, start)).steps
    else:
        predictor.query(text)  # the characters are still checked
    if start == 0:
        out.tokens.append(chars[0])
        out.token_logprobs.append(None)
        out.top_logprobs.append(None)
        out.text_offset.append(0)
    for s in steps:
        out.tokens.append(s.char)
        out.token_logprobs.append(_ln(s.prob))
        out.top_logprobs.append({c.char: _ln(c.prob) for c in s.top[:top]})
        out.text_offset.append(s.position)
    return out


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """`text` up to the first place any of `stops` begins (the stop itself left out), and
    whether one was found."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not found:
        return text, False
    return text[: min(found)], True
