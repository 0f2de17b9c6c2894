"""The loss levels a model must beat, computed from the training text alone.

- `unigram`: the entropy of the text's character frequencies, the loss of a model that
  has learned which characters are common and nothing about their order.
- `repeat`: the loss of predicting the character just read again: the previous
  character gets the probability `r` with which characters repeat in the text, or its
  own frequency where that is higher (a model that favours repeating never gives the
  last character less than a model of frequencies would), and the others share the
  rest in proportion to their frequencies. A model trained on targets equal to its
  inputs (a classic off-by-one bug) behaves like this on real text, only more sure of
  itself. On a text that never repeats a character ("abab") it is the unigram level,
  not 0: "anything but the last character" is not a way of repeating it.
- `determined_after`: the shortest context k (1 to 8 characters) after which the next
  character is almost always the same (conditional entropy under 0.01 nats): the text
  is deterministic, like the alphabet, and a working model gets close to zero loss.
  None when no such k exists, or when the text is too short to tell
  (`judges_determinism`: each character must occur `RECURRENCE` times on average).

All in nats per character, counted on the text's first `MAX_CHARS` characters
(determinism on its first `CONTEXT_CHARS`).

`bounded_softmax_floor(V)`: the least cross-entropy a softmax of values within [-1, 1]
(an LSTM's output taken as logits) can reach on V classes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

__all__ = [
    "MAX_CHARS",
    "ReferenceLevels",
    "bounded_softmax_cap",
    "bounded_softmax_floor",
    "judges_determinism",
]

MAX_CHARS = 2_000_000
DETERMINISTIC_NATS = 0.01
MAX_CONTEXT = 8
CONTEXT_CHARS = 200_000
"""Determinism is judged on the text's first this many characters."""
RECURRENCE = 10
"""How many times, on average, each context must occur for determinism to be judged."""


@dataclass(frozen=True)
class ReferenceLevels:
    unigram: float
    repeat: float
    determined_after: int | None = None

    @classmethod
    def of_text(cls, text: str) -> ReferenceLevels:
        """The levels of `text` (the training text: the levels a model must beat there)."""
        return cls.of_ids(torch.tensor([ord(c) for c in text[:MAX_CHARS]], dtype=torch.int64))

    @classmethod
    def of_ids(cls, ids: torch.Tensor) -> ReferenceLevels:
        """The levels of a text given as character ids (1-D, any integer dtype)."""
        ids = ids[:MAX_CHARS].to(torch.int64)
        n = ids.numel()
        if n < 2:
            return cls(0.0, 0.0, 1)
        freq = torch.bincount(ids).double() / n  # indexed by id; zero for ids not used
        used = freq[freq > 0]
        unigram = float(-(used * used.log()).sum())
        return cls(unigram, _repeat_loss(ids, freq), _determined_after(ids[:CONTEXT_CHARS]))

    def beaten_by(self, loss: float) -> float:
        """How far `loss` is below the lower of the two levels (negative: above it)."""
        return min(self.unigram, self.repeat) - loss

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ReferenceLevels | None:
        """The levels saved in a log or summary, or None when they are not there."""
        if not isinstance(data, dict):
            return None
        try:
            unigram, repeat = float(data["unigram"]), float(data["repeat"])
        except (KeyError, TypeError, ValueError, OverflowError):
            return None
        k = data.get("determined_after")
        return cls(unigram, repeat, k if isinstance(k, int) else None)


def judges_determinism(text: str) -> bool:
    """Whether `text` is long enough for `determined_after` to be judged at all: each of
    its characters occurs `RECURRENCE` times on average (26 letters: 260 characters)."""
    head = text[:CONTEXT_CHARS]
    return len(head) - 1 >= RECURRENCE * len(set(head))


def bounded_softmax_cap(classes: int, bound: float = 1.0) -> float:
    """The most a softmax of values within [-b, b] (b = `bound`) can give one of
    `classes` classes: e^b / (e^b + (classes - 1) e^-b), its value at +b and every other
    at -b (at b = 1: 0.23 of 26, 0.88 of 2)."""
    return math.exp(bound) / (math.exp(bound) + (classes - 1) * math.exp(-bound))


def bounded_softmax_floor(classes: int) -> float:
    """The least cross-entropy of a softmax of values within [-1, 1] on `classes`
    classes, -ln `bounded_softmax_cap` (1.478 nats for 26, 0.127 for 2)."""
    return -math.log(bounded_softmax_cap(classes))


def _repeat_loss(ids: torch.Tensor, freq: torch.Tensor) -> float:
    """ids: (N,); freq: the frequency of each id (indexed by id)."""
    prev, nxt = ids[:-1], ids[1:]
    same = prev == nxt
    r = float(same.double().mean())
    # (N-1,): the probability of repeating each character, never below its frequency
    p_same = freq[prev].clamp_min(r).clamp(1e-6, 1 - 1e-6)
    other = (1 - p_same) * freq[nxt] / (1 - freq[prev]).clamp_min(1e-12)
    losses = torch.where(same, -p_same.log(), -other.clamp_min(1e-300).log())
    return float(losses.mean())


def _determined_after(ids: torch.Tensor) -> int | None:
    """The shortest context length after which the next character is (almost) always
    the same, counting only contexts that recur: every context must be seen 10 times on
    average, or a short text would look determined merely because it is short."""
    n = ids.numel()
    for k in range(1, min(MAX_CONTEXT, n - 1) + 1):
        contexts, h = _conditional_entropy(ids, k)
        if (n - k) < RECURRENCE * contexts:
            return None
        if h < DETERMINISTIC_NATS:
            return k
    return None


def _conditional_entropy(ids: torch.Tensor, k: int) -> tuple[int, float]:
    """The number of distinct k-character contexts, and H(next | previous k) in nats."""
    n = ids.numel() - k
    # one integer per context: the k ids hashed into 64 bits (a collision only merges
    # two contexts' counts)
    key = torch.zeros(n, dtype=torch.int64)
    for j in range(k):
        key = key * 1_000_003 + ids[j : j + n]
    pair = key * 1_114_111 + ids[k : k + n]
    _, ctx_counts = torch.unique(key, return_counts=True)
    _, pair_counts = torch.unique(pair, return_counts=True)

    def entropy(counts: torch.Tensor) -> float:
        p = counts.double() / n
        return float(-(p * p.log()).sum())

    return ctx_counts.numel(), entropy(pair_counts) - entropy(ctx_counts)
