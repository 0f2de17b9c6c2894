"""What the watcher has seen of a run (`Run`), as its rules read it: each step's loss,
metrics and gradient norms (`StepRecord`), each place a softmax was taken (`Site`),
the class labels of both sets, and the recurrent layers' gates."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from charlm.watcher.probes import LayerGates
from charlm.watcher.softmaxes import SoftmaxCall

__all__ = ["BOUND", "Run", "Site", "StepRecord"]

BOUND = 1.0 + 1e-5
"""The largest |value| still taken for a tanh- or sigmoid-bounded output."""


@dataclass
class StepRecord:
    """What one step showed."""

    step: int
    loss: float | None
    metrics: dict[str, float]
    grad_norms: dict[str, float]  # by layer, before the optimizer stepped
    with_grad: int  # parameters whose gradient was not zero when the optimizer stepped
    stepped: int  # optimizer steps taken during this step
    held: int  # parameters still holding an earlier gradient at the first arrival
    checked: int  # parameters checked for that

    @property
    def grad_norm(self) -> float | None:
        if not self.grad_norms:
            return None
        return math.sqrt(sum(v * v for v in self.grad_norms.values()))


@dataclass
class Site:
    """A place in the loop where a softmax (or log-softmax, or cross-entropy) is taken."""

    where: str
    classes: int
    first_step: int
    largest_ever: float = 0.0
    steps: int = 0  # steps it was seen in
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    over_at: int | None = None  # the first step a value beyond the bound was fed to it
    projected: bool = False  # fed by a matrix product (a linear layer): not bounded

    def add(self, step: int, call: SoftmaxCall) -> None:
        self.steps += 1
        self.projected = self.projected or call.projected
        self.largest_ever = max(self.largest_ever, call.largest)
        self.recent.append(call.largest)
        if call.largest > BOUND and self.over_at is None:
            self.over_at = step


@dataclass
class Run:
    """Everything the rules read, kept up to date by the watcher."""

    records: deque[StepRecord] = field(default_factory=lambda: deque(maxlen=1000))
    first: list[StepRecord] = field(default_factory=list)  # the first 20 steps
    steps: int = 0
    optimizer_steps: int = 0
    optimizer_params: int = 0  # parameters the optimizers hold
    params: int = 0  # parameters watched that require a gradient
    arrived: int = 0  # gradients that reached a watched parameter, in all
    never: list[str] = field(default_factory=list)  # parameters no gradient ever reached
    not_optimized: list[str] = field(default_factory=list)
    held_streak: int = 0  # consecutive steps whose gradients found old ones
    cleared_streak: int = 0  # consecutive steps since, whose gradients found none
    sites: dict[str, Site] = field(default_factory=dict)
    gates: dict[str, LayerGates] = field(default_factory=dict)
    train_labels: dict[int, int] | None = None  # class -> count
    val_labels: dict[int, int] | None = None
    fired: set[str] = field(default_factory=set)

    @property
    def last(self) -> StepRecord | None:
        return self.records[-1] if self.records else None

    @property
    def classes(self) -> int | None:
        """How many classes the loop's softmax spreads over (or the labels have)."""
        counts = [s.classes for s in self.sites.values()]
        if self.train_labels:
            counts.append(len(set(self.train_labels) | set(self.val_labels or {})))
        return max(counts) if counts else None

    def losses(self, steps: int) -> list[float]:
        """The losses of the last `steps` steps that had one."""
        out = [r.loss for r in list(self.records)[-steps:] if r.loss is not None]
        return [x for x in out if math.isfinite(x)]

    def metric(self, name: str) -> list[tuple[int, float]]:
        return [(r.step, r.metrics[name]) for r in self.records if name in r.metrics]
