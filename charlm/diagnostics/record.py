"""A run's record as the detectors read it: its logged rows so far and the facts that do
not change (`RunRecord`).

`RunRecord.record(row)` keeps a row and the running figures the detectors read: the
training losses (and accuracies) as steps and values with their running sums (`Series`),
so that a detector reads the mean over any stretch of steps at the cost of two binary
searches; the training loss at each evaluation; the gradient norms; a loss that became
NaN. Every detector takes a `RunRecord`; running them is `history.History`'s part, so
this module knows no detector.
"""

from __future__ import annotations

import bisect
import math
import statistics
from dataclasses import dataclass, field

from charlm.diagnostics.findings import RunFacts, finite
from charlm.runlog import EvalRow, NonfiniteRow, Row, TrainRow

__all__ = ["RunRecord", "Series"]


@dataclass
class Series:
    """Values logged at steps, with their running sums."""

    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    sums: list[float] = field(default_factory=lambda: [0.0])

    def add(self, step: int, value: float) -> None:
        self.steps.append(step)
        self.values.append(value)
        self.sums.append(self.sums[-1] + value)

    def mean_between(self, after: float, upto: float) -> tuple[float, int]:
        """(mean, count) of the values logged at steps in (after, upto]; (NaN, 0) when
        none was."""
        i = bisect.bisect_right(self.steps, after)
        j = bisect.bisect_right(self.steps, upto)
        if j <= i:
            return math.nan, 0
        return (self.sums[j] - self.sums[i]) / (j - i), j - i

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class RunRecord:
    """A run's rows so far, and the figures read from them."""

    facts: RunFacts = field(default_factory=RunFacts)
    train: list[TrainRow] = field(default_factory=list)
    """The training rows with a finite loss."""
    evals: list[EvalRow] = field(default_factory=list)
    """The evaluations with a finite validation loss or accuracy."""
    train_at_eval: list[float] = field(default_factory=list)
    """The training loss when each evaluation ran (mean of the last 3 logged values)."""
    accuracy_at_eval: list[float] = field(default_factory=list)
    """The training accuracy when each evaluation ran (mean of the last 3 logged; NaN
    where the log has none)."""
    lowest_loss: float = math.inf
    grad_norms: list[float] = field(default_factory=list)
    """The finite gradient norms of the training rows, in order (kept as they come, so
    that a detector reading them all costs no more per row on a long log)."""
    norm_steps: list[int] = field(default_factory=list)
    """The step of each of `grad_norms`."""
    curve: Series = field(default_factory=Series)
    """The training losses by step."""
    accuracies: Series = field(default_factory=Series)
    """The training accuracies by step (of the rows that carry one)."""
    nonfinite: NonfiniteRow | None = None
    """The row of a loss that became NaN or infinite (the run stops there)."""
    _jumps: float = field(default=0.0, repr=False)
    """The sum of the squared differences between consecutive losses."""

    def record(self, row: Row) -> bool:
        """Keep a row (a training row with a finite loss, an evaluation with a finite
        validation loss or accuracy, a loss that became NaN or infinite); False for one
        the detectors do not read."""
        if isinstance(row, TrainRow) and finite(row.loss):
            self._add_train(row, row.loss)
        elif isinstance(row, NonfiniteRow):
            self.nonfinite = row
        elif isinstance(row, EvalRow) and (finite(row.val_loss) or finite(row.val_accuracy)):
            self.evals.append(row)
            self.train_at_eval.append(self.recent_loss() if self.train else math.nan)
            recent = self.accuracies.values[-3:]
            self.accuracy_at_eval.append(statistics.fmean(recent) if recent else math.nan)
        else:
            return False
        return True

    def _add_train(self, row: TrainRow, loss: float) -> None:
        if self.curve.values:
            self._jumps += (loss - self.curve.values[-1]) ** 2
        self.train.append(row)
        self.curve.add(row.step, loss)
        self.lowest_loss = min(self.lowest_loss, loss)
        if finite(row.grad_norm):
            self.grad_norms.append(row.grad_norm)
            self.norm_steps.append(row.step)
        if finite(row.accuracy):
            self.accuracies.add(row.step, row.accuracy)

    # -- the loss curve, read in steps ------------------------------------------------

    def recent_loss(self, n: int = 3) -> float:
        """Mean of the last `n` logged training losses."""
        losses = self.curve.values[-n:]
        return statistics.fmean(losses) if losses else math.nan

    def mean_between(self, after: float, upto: float) -> tuple[float, int]:
        """(mean, count) of the training losses logged at steps in (after, upto]."""
        return self.curve.mean_between(after, upto)

    def level(self, at: float, width: float) -> float:
        """The training loss around step `at`: the mean of those logged in (at - width,
        at], or the last logged before that stretch; NaN when none was logged by `at`."""
        mean, n = self.curve.mean_between(at - width, at)
        if n:
            return mean
        i = bisect.bisect_right(self.curve.steps, at)
        return self.curve.values[i - 1] if i else math.nan

    def noise(self) -> float:
        """The spread of a logged loss around its trend: the root of half the mean
        squared difference between consecutive values (0 for a smooth curve)."""
        n = len(self.curve) - 1
        return math.sqrt(self._jumps / (2 * n)) if n > 0 else 0.0

    @property
    def step(self) -> int:
        return max((r.step for r in [*self.train[-1:], *self.evals[-1:]]), default=0)
