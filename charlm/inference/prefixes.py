"""Where scoring can start again: the model's state part-way through recent texts.

An editor scores a text after every keystroke, and most of the text is the same as the
last time. `Predictor.score` reads a text in blocks of `EVERY` characters and keeps, for
the last `TEXTS` texts, the recurrent state at the end of each block with the running
sums of the summary (nats so far, the least likely character so far). Scoring a text
then starts from the last block boundary inside its common prefix with one of those
texts (and not after the first position it must list): the model is causal, so the state
after a prefix depends on that prefix alone, and the result is the same as reading the
whole text (tested), for a cost that grows with the part that changed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from charlm.model import State

__all__ = ["EVERY", "TEXTS", "Mark", "PrefixStates"]

EVERY = 256  # characters per block
TEXTS = 8  # recent texts remembered, per model


@dataclass(frozen=True)
class Mark:
    """The reading of a text after its first `read` characters: the state after them,
    and the summary of the positions they predict, 1 .. `read` (so a text may resume
    from it when its first `read` + 1 characters are the same)."""

    read: int
    state: State
    nats: float  # -log p summed over positions 1 .. read
    worst: tuple[float, int]  # (probability, position) of the least likely of those


class PrefixStates:
    """The marks of the last few texts one model scored (thread-safe)."""

    def __init__(self, texts: int = TEXTS) -> None:
        self.texts = texts
        self._marks: OrderedDict[int, tuple[torch.Tensor, list[Mark]]] = OrderedDict()
        self._lock = threading.Lock()
        self._next = 0

    def resume(self, ids: torch.Tensor, before: int) -> tuple[Mark | None, list[Mark]]:
        """The furthest mark of a remembered text that `ids` (N,) shares, at most
        `before` characters in; and the marks up to it, to keep for `ids`."""
        best: tuple[Mark | None, list[Mark]] = (None, [])
        with self._lock:
            entries = list(self._marks.items())
        for key, (known, marks) in entries:
            n = min(known.numel(), ids.numel())
            differs = (known[:n] != ids[:n]).nonzero()
            same = int(differs[0]) if differs.numel() else n
            usable = [m for m in marks if m.read < same and m.read <= before]
            if usable and (best[0] is None or usable[-1].read > best[0].read):
                best = (usable[-1], usable)
                with self._lock:
                    if key in self._marks:
                        self._marks.move_to_end(key)
        return best

    def keep(self, ids: torch.Tensor, marks: list[Mark]) -> None:
        """Remember the marks of `ids`, forgetting the least recently used text."""
        if not marks:
            return
        with self._lock:
            self._marks[self._next] = (ids, marks)
            self._next += 1
            while len(self._marks) > self.texts:
                self._marks.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._marks.clear()
