"""A run's clock: how long it has trained, how fast, and how much of its budget is used.

The training time of a run is the wall time since it began, resumed invocations
included, less the time spent outside training (drawing plots, updating displays:
`paused`); evaluations count. The speed is the characters read by the steps over the
time spent in them. The budget's share is that of this invocation's training time in
`max_minutes`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = ["RunClock"]


@dataclass
class RunClock:
    """The clock of one invocation of a run, started when it is made."""

    before_s: float = 0.0
    """Training seconds of the invocations before this one (a resumed run's)."""
    max_minutes: float | None = None
    started: float = field(default_factory=time.perf_counter)
    paused_s: float = 0.0
    step_s: float = 0.0
    """Seconds spent in training steps."""
    step_chars: int = 0
    """Characters the steps read (on every rank)."""
    used: float = 0.0
    """The share of the budget used as the ranks agreed on it after the last step (the
    learning rate and the stop follow this, so that ranks whose clocks differ agree)."""

    def spent(self) -> float:
        """Training seconds of this invocation so far."""
        return time.perf_counter() - self.started - self.paused_s

    def elapsed(self) -> float:
        """Training seconds of the whole run so far."""
        return self.before_s + self.spent()

    def budget_share(self) -> float:
        """This invocation's share of `max_minutes` so far (0 without a budget)."""
        if self.max_minutes is None:
            return 0.0
        return self.spent() / (self.max_minutes * 60)

    def count_step(self, seconds: float, chars: int) -> None:
        self.step_s += seconds
        self.step_chars += chars

    @property
    def chars_per_s(self) -> float:
        return self.step_chars / self.step_s if self.step_s > 0 else 0.0

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Time inside the block is not training time."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.paused_s += time.perf_counter() - t0
