"""A run's history as the detectors read it: its logged rows so far, the facts that do
not change, and the findings made. `History.add(row)` records a row and runs every
detector that applies to the run, has what it needs (see `detectors.Rule`) and has not
fired yet; each fires at most once. `History.finish()`, once the last row is in, checks
each finding against the rest of the run (`passed`: how the run got past it) and leaves
out a finding that a later one explains.

The training losses (and accuracies) are kept as steps and values with their running
sums (`Series`), so that a detector reads the mean over any stretch of steps at the cost
of two binary searches.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from charlm.diagnostics.detectors import DETECTORS, Rule
from charlm.diagnostics.findings import Finding, Row, RunFacts, finite

__all__ = ["History", "Series"]

_COSTLY_GROWTH = 1.02
"""A costly rule runs again once the rows have grown by this factor (and at the end)."""
_COSTLY_EVERY_ROW = 200
"""Up to this many rows, a costly rule runs at every row."""


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
class History:
    """A run's rows so far, and the findings they produced."""

    facts: RunFacts = field(default_factory=RunFacts)
    train: list[Row] = field(default_factory=list)
    evals: list[Row] = field(default_factory=list)
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
    nonfinite: Row | None = None
    """The row of a loss that became NaN or infinite (the run stops there)."""
    findings: list[Finding] = field(default_factory=list)
    _jumps: float = field(default=0.0, repr=False)
    """The sum of the squared differences between consecutive losses."""
    _costly_at: int = field(default=0, repr=False)

    def add(self, row: Row) -> list[Finding]:
        """Record a row ("train": step, loss and any signals; "eval": step, val_loss
        and/or val_accuracy) and return the findings it makes fire."""
        kind = row.get("kind")
        step = row.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            return []  # a row without a step (a hand-edited log) is not read
        if kind == "train" and finite(row.get("loss")):
            self._add_train(row, step)
        elif kind == "nonfinite":
            self.nonfinite = row
        elif kind == "eval" and (finite(row.get("val_loss")) or finite(row.get("val_accuracy"))):
            self.evals.append(row)
            self.train_at_eval.append(self.recent_loss() if self.train else math.nan)
            recent = self.accuracies.values[-3:]
            self.accuracy_at_eval.append(statistics.fmean(recent) if recent else math.nan)
        else:
            return []
        costly = len(self.train) <= _COSTLY_EVERY_ROW or (
            len(self.train) >= _COSTLY_GROWTH * self._costly_at
        )
        if costly:
            self._costly_at = len(self.train)
        return self._run(lambda rule: costly or not rule.costly)

    def _add_train(self, row: Row, step: int) -> None:
        loss = float(row["loss"])
        if self.curve.values:
            self._jumps += (loss - self.curve.values[-1]) ** 2
        self.train.append(row)
        self.curve.add(step, loss)
        self.lowest_loss = min(self.lowest_loss, loss)
        if finite(row.get("grad_norm")):
            self.grad_norms.append(float(row["grad_norm"]))
            self.norm_steps.append(step)
        if finite(row.get("accuracy")):
            self.accuracies.add(step, float(row["accuracy"]))

    def _run(self, due: Callable[[Rule], bool]) -> list[Finding]:
        fired = {f.name for f in self.findings}
        new = []
        for rule in DETECTORS:
            if rule.name in fired or not rule.applies(self.facts) or rule.missing(self):
                continue
            if not due(rule) or any(name in fired for name in _EXPLAINERS[rule.name]):
                continue
            finding = rule.check(self)
            if finding is not None:
                new.append(finding)
                fired.add(rule.name)
        self.findings.extend(new)
        return new

    def finish(self) -> list[Finding]:
        """The findings once the run is over: costly rules run a last time; each finding
        is checked against the rest of the run (`passed`); a finding that a later one,
        still holding, explains is left out."""
        self._run(lambda rule: rule.costly)
        checked = []
        for f in self.findings:
            rule = _RULES.get(f.name)
            how = (
                rule.passed(self, f) if rule is not None and rule.passed and not f.passed else None
            )
            checked.append(replace(f, passed=how) if how else f)
        holding = {f.name for f in checked if not f.passed}
        explained = {n for f in holding for n in _RULES[f].explains if f in _RULES}
        self.findings = [f for f in checked if f.name not in explained]
        return self.findings

    def not_judged(self) -> list[str]:
        """The rules that apply to this run but could not judge it, each with why
        ("learning_rate_too_low: needs 200 steps; the log ends at step 4")."""
        fired = {f.name for f in self.findings}
        return [
            f"{rule.name}: {why}"
            for rule in DETECTORS
            if rule.name not in fired
            and rule.applies(self.facts)
            and (why := rule.missing(self, listed_only=True))
        ]

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
        rows = [r for r in (self.train[-1:] + self.evals[-1:]) if isinstance(r.get("step"), int)]
        return max((int(r["step"]) for r in rows), default=0)


_RULES: dict[str, Rule] = {rule.name: rule for rule in DETECTORS}
_EXPLAINERS: dict[str, list[str]] = {
    rule.name: [other.name for other in DETECTORS if rule.name in other.explains]
    for rule in DETECTORS
}
"""For each rule, those whose finding explains its own (it need not fire after them)."""
