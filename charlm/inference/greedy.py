"""Greedy continuations of many texts at once: `Predictor.predict_batch`'s steps.

Each text's continuation takes its likeliest next character at every step, with the
runners-up it was chosen over; all of them advance together, one batched model step
per character, so B continuations cost about one. A continuation shorter than the
longest stops listing steps at its own length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from charlm.inference.results import CharProb, ContinuationStep
from charlm.slices import Sliced

__all__ = ["greedy_steps"]


def greedy_steps(
    chars: tuple[str, ...],
    probs: torch.Tensor,
    step: Callable[[torch.Tensor], torch.Tensor] | None,
    lengths: Sequence[int],
    alternatives: Sequence[int],
) -> Sliced[list[list[ContinuationStep]]]:
    """The steps of B greedy continuations (`lengths[b]` characters each, with
    `alternatives[b]` runners-up each), from the distributions after the texts `probs`
    (B, V); `step(ids (B,))` feeds one character to each and returns the next logits
    (B, V) (None when no continuation is asked for). One piece per model step."""
    steps: list[list[ContinuationStep]] = [[] for _ in lengths]
    n = max(lengths, default=0)
    if not n or step is None:
        return steps
    k = min(max(alternatives), probs.shape[1])
    p = probs
    for i in range(n):
        best_p, best = p.max(1)
        alt_v, alt_i = torch.topk(p, k, dim=1)  # k = 0 gives empty rows
        rows = zip(best.tolist(), best_p.tolist(), alt_v.tolist(), alt_i.tolist(), strict=True)
        for b, (c, bp, av, ai) in enumerate(rows):
            if i < lengths[b]:
                top = [CharProb(char=chars[j], prob=v) for v, j in zip(av, ai, strict=True)]
                steps[b].append(
                    ContinuationStep(char=chars[c], prob=bp, top=top[: alternatives[b]])
                )
        if i + 1 < n:
            p = torch.softmax(step(best).float(), -1)
            yield
    return steps
