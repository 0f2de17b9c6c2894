"""`PlotCallback`: keeps `learning_curves.png` next to a training run's checkpoint up to
date while it trains.

It redraws at evaluations (at most every few seconds, so drawing never costs more than a
small share of a run) and always when the run ends; the drawing itself is
`charlm.plots.plot_metrics`. A plot that fails is logged and never stops training.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

from charlm.plots import PLOT_FILE, plot_metrics
from charlm.training.callbacks import EvalInfo, TrainCallback, TrainingRun, TrainResult

__all__ = ["PlotCallback"]

log = logging.getLogger(__name__)

_MIN_INTERVAL_S = 5.0


class PlotCallback(TrainCallback):
    """Keeps `learning_curves.png` in the run directory up to date."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.last_draw = -float("inf")

    def on_start(self, trainer: TrainingRun) -> None:
        self.directory = trainer.directory
        self.last_draw = time.perf_counter()  # a run shorter than the interval draws once

    def on_eval(self, info: EvalInfo) -> None:
        if time.perf_counter() - self.last_draw >= _MIN_INTERVAL_S:
            self._draw()

    def on_end(self, result: TrainResult) -> None:
        self._draw()

    def _draw(self) -> None:
        if self.directory is None:
            return
        try:
            plot_metrics(self.directory)
        except Exception as e:  # a plot must never stop training
            log.warning("could not draw learning curves: %s", e)
            with contextlib.suppress(OSError):
                (self.directory / f".{PLOT_FILE}.tmp").unlink()
        self.last_draw = time.perf_counter()
