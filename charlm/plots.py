"""Learning curves as a PNG, drawn from a run's `metrics.jsonl`.

Four panels: training and validation loss against steps (with a dashed line where a
diagnostic detector fired, named) and against wall time, both with the training text's
unigram and repeat levels dotted, the gradient norm before
clipping, and the learning rate. matplotlib is imported only to draw. This module knows
nothing of training: `charlm.training.plotting.PlotCallback` redraws the curves while a
run trains, and `charlm plot` draws them for a finished one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from charlm.metrics import METRICS_FILE, read_metrics

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
    train = [r for r in rows if r.get("kind") == "train"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    findings = [r for r in rows if r.get("kind") == "diagnosis" and isinstance(r.get("step"), int)]
    levels = next((r for r in rows if r.get("kind") == "reference"), {})

    def series(rs: list[dict[str, Any]], x: str, y: str) -> tuple[list[float], list[float]]:
        pairs = [(r[x], r[y]) for r in rs if r.get(x) is not None and r.get(y) is not None]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), constrained_layout=True)

    def log_scale_if_positive(ax: Any, values: list[float]) -> None:
        if values and min(values) > 0:  # a loss of exactly 0 (one-symbol corpus) stays linear
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain)

    for ax, x, label in ((axes[0][0], "step", "step"), (axes[0][1], "time_s", "wall time (s)")):
        train_xy = series(train, x, "loss")
        val_xy = series(evals, x, "val_loss")
        ax.plot(*train_xy, label="train", color="#4477aa", linewidth=1)
        ax.plot(*val_xy, "o-", label="validation", color="#ee6677", markersize=3)
        _mark_levels(ax, levels)
        if x == "step":
            _mark_findings(ax, findings)
        ax.set_xlabel(label)
        ax.set_ylabel("loss (nats/char)")
        log_scale_if_positive(ax, train_xy[1] + val_xy[1])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    ax = axes[1][0]
    norms = series(train, "step", "grad_norm")
    ax.plot(*norms, color="#228833", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("gradient norm before clipping")
    log_scale_if_positive(ax, norms[1])
    ax.grid(True, which="both", alpha=0.3)
    ax = axes[1][1]
    ax.plot(*series(train, "step", "lr"), color="#aa3377", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(True, alpha=0.3)
    last = max((int(r.get("step", 0)) for r in rows), default=0)
    best = min((r["val_loss"] for r in evals if r.get("val_loss") is not None), default=None)
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


def _mark_levels(ax: Any, levels: dict[str, Any]) -> None:
    """Dotted lines at the training text's unigram and repeat levels (see
    `diagnostics.references`): a model has learned order once it is below both."""
    styles = (("unigram", "unigram level", ":"), ("repeat", "repeat level", "-."))
    for key, label, style in styles:
        value = levels.get(key)
        if isinstance(value, int | float) and value > 0:
            ax.axhline(value, color="#777777", linestyle=style, linewidth=1, label=label)


def _mark_findings(ax: Any, findings: list[dict[str, Any]]) -> None:
    """A dashed line at each step where a detector fired, labelled with its name."""
    for i, f in enumerate(findings):
        ax.axvline(f["step"], color="#cc6600", linestyle="--", linewidth=1)
        ax.annotate(
            str(f.get("name", "")).replace("_", " "),
            xy=(f["step"], 1 - 0.07 * (i % 4)),
            xycoords=("data", "axes fraction"),
            xytext=(3, -3),
            textcoords="offset points",
            va="top",
            fontsize=8,
            color="#cc6600",
        )
