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
from itertools import chain
from typing import TYPE_CHECKING

import torch
from pydantic import Field

from charlm._config import check_int
from charlm.inference.results import Result, ScoreStep
from charlm.inference.unknown import read_text

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
    predictor: Predictor,
    text: str,
    *,
    start: int = 0,
    top: int = 0,
    on_unknown: str = "refuse",
    replacement: str | None = None,
) -> TokenLogprobs:
    """The log-probabilities of the characters of `text` from position `start` on, each
    given all of `text` before it, with the `top` likeliest characters at each step.
    `on_unknown` (`charlm.inference.unknown`): a skipped character's entry is null, as
    the first character's is; a replaced one's is its replacement's."""
    out = TokenLogprobs(tokens=[], token_logprobs=[], top_logprobs=[], text_offset=[])
    pieces = logprob_pieces(
        predictor, text, start=start, top=top, on_unknown=on_unknown, replacement=replacement
    )
    with torch.inference_mode():
        for piece in pieces:
            out.tokens.extend(piece.tokens)
            out.token_logprobs.extend(piece.token_logprobs)
            out.top_logprobs.extend(piece.top_logprobs)
            out.text_offset.extend(piece.text_offset)
    return out


def logprob_pieces(
    predictor: Predictor,
    text: str,
    *,
    start: int = 0,
    top: int = 0,
    on_unknown: str = "refuse",
    replacement: str | None = None,
) -> Iterator[TokenLogprobs]:
    """`text_logprobs` in pieces (`charlm.slices`), each yielding the entries of the
    characters it read; the arguments are checked now. Every character from `start`
    has an entry, in order: the tokens joined are the text as given."""
    check_int("start", start, 0)
    check_int("top", top, 0)
    if start >= len(text):
        return iter(())
    reading = read_text(predictor.vocab, text, on_unknown, replacement)
    steps = None
    first = max(1, start)
    if len(reading.read) >= 2 and reading.fed_index(first) < len(reading.read):
        steps = predictor.score_pieces(
            text, top, start=first, on_unknown=on_unknown, replacement=replacement
        )
    return _pieces(text, start, steps, top)


def _pieces(
    text: str, start: int, steps: Iterator[list[ScoreStep]] | None, top: int
) -> Iterator[TokenLogprobs]:
    """The entries from `start` on: the scored steps, and a null entry for each
    character nothing predicts (the first one read, and any skipped)."""
    at = start  # the next position without an entry
    for piece in chain(steps or (), [None]):  # None: the characters left at the end
        if piece == []:
            continue  # a piece before `start`
        scored = {s.position: s for s in piece or ()}
        end = piece[-1].position + 1 if piece else len(text)
        positions = range(at, end)
        if not positions:
            continue
        entries = [scored.get(i) for i in positions]
        yield TokenLogprobs(
            tokens=[text[i] for i in positions],
            token_logprobs=[_ln(s.prob) if s else None for s in entries],
            top_logprobs=[
                {c.char: _ln(c.prob) for c in s.top[:top]} if s else None for s in entries
            ],
            text_offset=list(positions),
        )
        at = end


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """`text` up to the first place any of `stops` begins (the stop itself left out), and
    whether one was found."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    if not found:
        return text, False
    return text[: min(found)], True
