"""Per-step confidence over a text (`Predictor.score`), read from the furthest state a
recent text left that still applies (`charlm.inference.prefixes`), in pieces
(`charlm.slices`).

Probabilities are softmax of the logits, computed in float32 from log-softmax; entropy
is in bits. A position's rank is 1 when the model's top choice was the actual character.
"""

from __future__ import annotations

import math
from collections.abc import Generator

import torch
import torch.nn.functional as F

from charlm.inference.prefixes import EVERY, Mark, PrefixStates
from charlm.inference.results import CharProb, ScoreResult, ScoreStep
from charlm.model import CharRNN, State
from charlm.slices import PIECE

__all__ = ["score_pieces", "top_chars"]

_LN2 = math.log(2.0)
assert EVERY % PIECE == 0, "a prefix mark must fall where a piece ends"


def top_chars(chars: tuple[str, ...], probs: torch.Tensor, k: int) -> list[CharProb]:
    """The `k` likeliest characters of a distribution (V,), likeliest first; 0: all."""
    k = min(k, probs.numel()) if k > 0 else probs.numel()
    values, indices = torch.topk(probs, k)
    return [
        CharProb(char=chars[i], prob=v)
        for v, i in zip(values.tolist(), indices.tolist(), strict=True)
    ]


def score_pieces(
    model: CharRNN,
    chars: tuple[str, ...],
    ids: torch.Tensor,
    *,
    name: str,
    text: str,
    prefixes: PrefixStates,
    alternatives: int,
    start: int,
    next_top: int | None,
) -> Generator[list[ScoreStep], None, ScoreResult]:
    """The score of `text` (its ids (N,), N >= 2, checked by the caller), in pieces
    (`charlm.slices`): each piece reads up to `PIECE` characters and yields
    their steps (none before `start`); the result has every field but `steps`."""
    n = ids.numel()
    mark, marks = prefixes.resume(ids, start - 1)
    read = mark.read if mark else 0  # characters already read: the state is after them
    state: State | None = mark.state if mark else None
    total_nats = mark.nats if mark else 0.0
    worst = mark.worst if mark else (math.inf, 1)  # least likely (probability, position)
    marks = list(marks)
    while read < n - 1:
        # pieces end on multiples of PIECE, so a text resumed from a mark is read in
        # the same pieces as when it was read whole, and scores the same
        end = min(n - 1, (read // PIECE + 1) * PIECE)
        steps: list[ScoreStep] = []
        out, state = model(ids[read:end].unsqueeze(0), state)
        logp = F.log_softmax(out[0].float(), -1)  # (t, V): positions read+1 .. end
        y = ids[read + 1 : end + 1]
        actual_logp = logp.gather(1, y.unsqueeze(1)).squeeze(1)
        total_nats -= float(actual_logp.sum())
        actual_p = actual_logp.exp()
        w = int(actual_p.argmin())  # the first of equals
        if float(actual_p[w]) < worst[0]:
            worst = (float(actual_p[w]), read + w + 1)
        skip = max(0, start - (read + 1))  # positions before `start`: not listed
        if skip < y.numel():
            steps = _steps(
                chars, logp[skip:], y[skip:], actual_p[skip:], read + skip + 1, alternatives
            )
        read = end
        if read % EVERY == 0:
            marks.append(Mark(read, (state[0].clone(), state[1].clone()), total_nats, worst))
        yield steps
    prefixes.keep(ids, marks)
    following: list[CharProb] = []
    if next_top is not None:
        out, _ = model(ids[n - 1 :].unsqueeze(0), state)
        following = top_chars(chars, F.softmax(out[0, -1].float(), -1), next_top)
    return ScoreResult(
        model=name,
        text=text,
        steps=[],
        bits_per_char=total_nats / (n - 1) / _LN2,
        min_prob=worst[0],
        min_position=worst[1],
        next=following,
    )


def _steps(
    chars: tuple[str, ...],
    logp: torch.Tensor,
    y: torch.Tensor,
    actual_p: torch.Tensor,
    first: int,
    alternatives: int,
) -> list[ScoreStep]:
    """The steps of consecutive positions from `first`: log-probabilities (t, V), the
    characters that came (t,) and their probabilities (t,)."""
    probs = logp.exp()
    ranks = (probs > actual_p.unsqueeze(1)).sum(1) + 1
    top_p, top_i = probs.max(1)
    entropy = -(probs * logp).nan_to_num().sum(1) / _LN2
    k = min(max(alternatives, 1), probs.shape[1])
    alt_v, alt_i = torch.topk(probs, k, dim=1)
    rows = zip(
        y.tolist(),
        actual_p.tolist(),
        ranks.tolist(),
        top_i.tolist(),
        top_p.tolist(),
        entropy.tolist(),
        alt_v.tolist(),
        alt_i.tolist(),
        strict=True,
    )
    steps = []
    for j, (c, p, r, ti, tp, h, av, ai) in enumerate(rows):
        top = [CharProb(char=chars[i], prob=v) for v, i in zip(av, ai, strict=True)]
        steps.append(
            ScoreStep(
                position=first + j,
                char=chars[c],
                prob=p,
                rank=r,
                top_char=chars[ti],
                top_prob=tp,
                entropy_bits=max(0.0, h),
                top=top[:alternatives] if alternatives > 0 else [],
            )
        )
    return steps
