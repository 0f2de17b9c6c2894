"""Learning curves as a PNG, drawn from a run's `metrics.jsonl`.

Four panels: training and validation loss against steps (with a dashed line where a
diagnostic detector fired, named) and against wall time, both with the training text's
unigram and repeat levels dotted, the gradient norm before
clipping, and the learning rate. matplotlib is imported only to draw. This module knows
nothing of training: `charlm.training.plotting.PlotCallback` redraws the curves while a
run trains, and `charlm plot` draws them for a finished one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charlm.runlog import METRICS_FILE, DiagnosisRow, EvalRow, ReferenceRow, TrainRow, read_metrics

if TYPE_CHECKING:
    from charlm.diagnostics.findings import Finding
    from charlm.diagnostics.references import ReferenceLevels

__all__ = ["PLOT_FILE", "plot_metrics"]

PLOT_FILE = "learning_curves.png"


def plot_metrics(directory: str | Path, out: str | Path | None = None) -> Path:
    """Draw the learning curves of the run in `directory` into `out` (a PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}")

    directory = Path(directory)
    target = Path(out) if out is not None else directory / PLOT_FILE
    rows = read_metrics(directory / METRICS_FILE)
    train = [r for r in rows if isinstance(r, TrainRow)]
    evals = [r for r in rows if isinstance(r, EvalRow)]
    findings = [r.finding for r in rows if isinstance(r, DiagnosisRow)]
    levels = next((r.references for r in rows if isinstance(r, ReferenceRow)), None)

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)

    def log_scale_if_positive(ax: Any, values: list[float]) -> None:
        if values and min(values) > 0:  # a loss of exactly 0 (one-symbol corpus) stays linear
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)

    for ax, by_time, label in ((axes[0][0], False, "step"), (axes[0][1], True, "wall time (s)")):
        train_xy = _series(((r.time_s if by_time else r.step), r.loss) for r in train)
        val_xy = _series(((r.time_s if by_time else r.step), r.val_loss) for r in evals)
        ax.plot(*train_xy, label="train", color="#4477aa", linewidth=1)
        ax.plot(*val_xy, "o-", label="validation", color="#ee6677", markersize=3)
        if levels is not None:
            _mark_levels(ax, levels)
        if not by_time:
            _mark_findings(ax, findings)
        ax.set_xlabel(label)
        ax.set_ylabel("loss (nats/char)")
        log_scale_if_positive(ax, train_xy[1] + val_xy[1])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax = axes[1][0]
    norms = _series((r.step, r.grad_norm) for r in train)
    ax.plot(*norms, color="#228833", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("gradient norm before clipping")
    log_scale_if_positive(ax, norms[1])
    ax.grid(True, which="both", alpha=0.3)
    ax = axes[1][1]
    ax.plot(*_series((r.step, r.lr) for r in train), color="#aa3377", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(True, alpha=0.3)
    last = max((r.step for r in rows), default=0)
    best = min(_series((r.step, r.val_loss) for r in evals)[1], default=None)
    title = f"{directory.name}: {last} steps"
    if best is not None:
        title += f", best validation loss {best:.4g} nats/char"
    fig.suptitle(title)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    fig.savefig(tmp, format="png", dpi=100, metadata={"Description": f"charlm steps={last}"})
    plt.close(fig)
    os.replace(tmp, target)
    return target


def _series(points: Iterable[tuple[float | None, float | None]]) -> tuple[list[float], list[float]]:
    """The points whose coordinates are both logged and finite, as (xs, ys)."""
    pairs = [
        (x, y)
        for x, y in points
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _mark_levels(ax: Any, levels: ReferenceLevels) -> None:
    """Dotted lines at the training text's unigram and repeat levels (see
    `diagnostics.references`): a model has learned order once it is below both."""
    styles = ((levels.unigram, "unigram level", ":"), (levels.repeat, "repeat level", "-."))
    for value, label, style in styles:
        if value > 0:
            ax.axhline(value, color="#777777", linestyle=style, linewidth=1, label=label)


def _mark_findings(ax: Any, findings: list[Finding]) -> None:
    """A dashed line at each step where a detector fired, labelled with its name."""
    for i, f in enumerate(findings):
        ax.axvline(f.step, color="#cc6600", linestyle="--", linewidth=1)
        ax.annotate(
            f.name.replace("_", " "),
            xy=(f.step, 1 - 0.07 * (i % 4)),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            va="top",
            fontsize=8,
            color="#cc6600",
        )
