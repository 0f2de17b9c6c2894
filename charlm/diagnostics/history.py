"""A run's history as the detectors read it: its logged rows so far, the facts that do
not change, and the findings made. `History.add(row)` records a row and runs every
detector that has not fired yet; each fires at most once."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from charlm.diagnostics.detectors import DETECTORS
from charlm.diagnostics.findings import Finding, Row, RunFacts, finite

__all__ = ["History"]


@dataclass
class History:
    """A run's rows so far, and the findings they produced."""

    facts: RunFacts = field(default_factory=RunFacts)
    train: list[Row] = field(default_factory=list)
    evals: list[Row] = field(default_factory=list)
    train_at_eval: list[float] = field(default_factory=list)
    """The training loss when each evaluation ran (mean of the last 3 logged values)."""
    lowest_loss: float = math.inf
    grad_norms: list[float] = field(default_factory=list)
    """The finite gradient norms of the training rows, in order (kept as they come, so
    that a detector reading them all costs no more per row on a long log)."""
    nonfinite: Row | None = None
    """The row of a loss that became NaN or infinite (the run stops there)."""
    findings: list[Finding] = field(default_factory=list)

    def add(self, row: Row) -> list[Finding]:
        """Record a row ("train": step, loss and any signals; "eval": step, val_loss) and
        return the findings it makes fire."""
        kind = row.get("kind")
        step = row.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            return []  # a row without a step (a hand-edited log) is not read
        if kind == "train" and finite(row.get("loss")):
            self.train.append(row)
            self.lowest_loss = min(self.lowest_loss, float(row["loss"]))
            if finite(row.get("grad_norm")):
                self.grad_norms.append(float(row["grad_norm"]))
        elif kind == "nonfinite":
            self.nonfinite = row
        elif kind == "eval" and finite(row.get("val_loss")):
            self.evals.append(row)
            self.train_at_eval.append(self.recent_loss() if self.train else math.nan)
        else:
            return []
        fired = {f.name for f in self.findings}
        new = []
        for detector in DETECTORS:
            if detector.__name__ in fired:
                continue
            finding = detector(self)
            if finding is not None:
                new.append(finding)
        self.findings.extend(new)
        return new

    def recent_loss(self, n: int = 3) -> float:
        """Mean of the last `n` logged training losses."""
        losses = [float(r["loss"]) for r in self.train[-n:] if finite(r.get("loss"))]
        return statistics.fmean(losses) if losses else math.nan

    @property
    def step(self) -> int:
        rows = [r for r in (self.train[-1:] + self.evals[-1:]) if isinstance(r.get("step"), int)]
        return max((int(r["step"]) for r in rows), default=0)
