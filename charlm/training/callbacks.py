"""What a training run tells the outside while it runs, and what it returns.

`TrainCallback` hooks are how progress bars, plots and tests watch a run; the trainer
calls them and knows nothing of what they do. A callback sees the run itself through
`TrainingRun`, the few parts of the `Trainer` it may read, so that this module does not
import the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from charlm.checkpoint import Progress
from charlm.train_config import TrainConfig

__all__ = ["CallbackList", "EvalInfo", "StepInfo", "TrainCallback", "TrainResult", "TrainingRun"]


class TrainingRun(Protocol):
    """What `on_start` is given of the run (the `Trainer`): where it writes, its
    settings, its progress, and why it stops ("" while it goes on; a callback may set it
    in `on_eval` to end the run after that evaluation)."""

    directory: Path
    config: TrainConfig
    progress: Progress
    stop_reason: str


@dataclass(frozen=True)
class StepInfo:
    step: int
    max_steps: int
    loss: float
    grad_norm: float
    lr: float
    chars_per_s: float
    elapsed_s: float
    time_fraction: float = 0.0
    """Share of the time budget used (0 without `max_minutes`)."""


@dataclass(frozen=True)
class EvalInfo:
    step: int
    val_loss: float
    best_val_loss: float
    improved: bool


@dataclass(frozen=True)
class TrainResult:
    directory: Path
    steps: int
    elapsed_s: float
    train_loss: float
    val_loss: float
    best_val_loss: float
    best_step: int
    stop_reason: str
    val_held_out: bool
    chars_per_s: float
    saved_step: int = 0
    """The step of the last checkpoint written (0: none was)."""


class TrainCallback:
    """Hooks for progress display and plots; the default does nothing.

    `on_eval` runs after the evaluation's checkpoint and metrics are written; `on_end`
    after the run's last checkpoint.
    """

    def on_start(self, trainer: TrainingRun) -> None: ...

    def on_step(self, info: StepInfo) -> None: ...

    def on_eval(self, info: EvalInfo) -> None: ...

    def on_end(self, result: TrainResult) -> None: ...


class CallbackList(TrainCallback):
    """Several callbacks called in order."""

    def __init__(self, *callbacks: TrainCallback | None) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def on_start(self, trainer: TrainingRun) -> None:
        for c in self.callbacks:
            c.on_start(trainer)

    def on_step(self, info: StepInfo) -> None:
        for c in self.callbacks:
            c.on_step(info)

    def on_eval(self, info: EvalInfo) -> None:
        for c in self.callbacks:
            c.on_eval(info)

    def on_end(self, result: TrainResult) -> None:
        for c in self.callbacks:
            c.on_end(result)
