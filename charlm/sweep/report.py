"""What a sweep writes: the best settings, a table of every trial, and a picture.

`write_report(study, out)` reads the whole study (every process's trials, not only this
one's) and writes into `out`:

    best.toml    the best complete trial's settings, for `charlm train --config`; its
                 first line names the trial and its validation loss
    trials.csv   one row per trial: number, state, each searched setting, best
                 validation loss, steps
    trials.md    the same table in markdown, under a summary
    sweep.png    the best validation loss against each searched setting, one panel per
                 setting (a log axis for log-uniform ones); pruned trials are hollow

Each file is replaced atomically, so that processes finishing together never leave a
half-written one. This module only reads the study; running it is `study`'s.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from charlm.checkpoint.tensors import atomic_write_bytes
from charlm.training.settings_file import write_settings

__all__ = [
    "BEST_FILE",
    "CSV_FILE",
    "MARKDOWN_FILE",
    "PLOT_FILE",
    "Report",
    "TrialRow",
    "best_trial",
    "trial_rows",
    "write_report",
]

BEST_FILE = "best.toml"
CSV_FILE = "trials.csv"
MARKDOWN_FILE = "trials.md"
PLOT_FILE = "sweep.png"


@dataclass(frozen=True)
class TrialRow:
    """One trial as the report shows it."""

    number: int
    state: str
    params: dict[str, Any]
    best_val_loss: float | None
    steps: int | None


@dataclass(frozen=True)
class Report:
    """The files written (`best` None: no trial completed)."""

    best: Path | None
    csv: Path
    markdown: Path
    plot: Path

    def paths(self) -> list[Path]:
        return [p for p in (self.best, self.csv, self.markdown, self.plot) if p is not None]


def trial_rows(trials: Sequence[FrozenTrial]) -> list[TrialRow]:
    rows = []
    for t in sorted(trials, key=lambda t: t.number):
        loss = t.user_attrs.get("best_val_loss")
        steps = t.user_attrs.get("steps")
        rows.append(
            TrialRow(
                number=t.number,
                state=t.state.name,
                params=dict(t.params),
                best_val_loss=float(loss) if loss is not None else None,
                steps=int(steps) if steps is not None else None,
            )
        )
    return rows


def best_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The complete trial of lowest value (the first of them, on a tie)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return min(done, key=lambda t: (t.value, t.number)) if done else None


def write_report(study: optuna.Study, out: Path) -> Report:
    """Write best.toml (when a trial completed), trials.csv, trials.md and sweep.png
    into `out`, from every trial of `study`."""
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    rows = trial_rows(trials)
    names = _param_names(trials)
    best = best_trial(trials)
    best_path = None
    if best is not None:
        best_path = out / BEST_FILE
        write_settings(
            best_path,
            best.user_attrs.get("model", {}),
            best.user_attrs.get("train", {}),
            _best_comment(study, best, best_path),
            preset=best.user_attrs.get("preset"),
        )
    csv_path = _write_text(out / CSV_FILE, _csv(rows, names))
    md_path = _write_text(out / MARKDOWN_FILE, _markdown(study, trials, rows, names, best))
    plot_path = _plot(out / PLOT_FILE, trials, names, best)
    return Report(best=best_path, csv=csv_path, markdown=md_path, plot=plot_path)


def _best_comment(study: optuna.Study, best: FrozenTrial, path: Path) -> str:
    a = best.user_attrs
    minutes = a.get("train", {}).get("max_minutes")
    unit = "minute" if minutes == 1 else "minutes"
    budget = f", {minutes:g} {unit}" if minutes is not None else ""
    corpus = a.get("corpus", "CORPUS")
    return (
        f"charlm sweep, study {study.study_name}: trial {best.number}, best validation loss "
        f"{best.value:.4f} nats/char at step {a.get('best_step')} "
        f"(of {a.get('steps')}{budget})\n"
        f"charlm train {corpus} --config {path} (flags given with it override these values)"
    )


def _param_names(trials: Sequence[FrozenTrial]) -> list[str]:
    """The searched settings, in the order trials first drew them."""
    names: dict[str, None] = {}
    for t in sorted(trials, key=lambda t: t.number):
        names.update(dict.fromkeys(t.params))
    return list(names)


def _distribution(trials: Sequence[FrozenTrial], name: str) -> BaseDistribution | None:
    for t in trials:
        if name in t.distributions:
            return t.distributions[name]
    return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _csv(rows: Sequence[TrialRow], names: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", "state", *names, "best_val_loss", "steps"])
    for r in rows:
        cells = [r.params.get(n) for n in names] + [r.best_val_loss, r.steps]
        writer.writerow([r.number, r.state, *("" if c is None else c for c in cells)])
    return buffer.getvalue()


def _describe(d: BaseDistribution | None) -> str:
    if isinstance(d, CategoricalDistribution):
        return "one of " + ", ".join(map(str, d.choices))
    if isinstance(d, FloatDistribution | IntDistribution):
        how = "log-uniform" if d.log else "uniform"
        return f"{how} from {d.low:g} to {d.high:g}"
    return "?"


def _markdown(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    rows: Sequence[TrialRow],
    names: Sequence[str],
    best: FrozenTrial | None,
) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.state.lower()] = counts.get(r.state.lower(), 0) + 1
    states = ", ".join(f"{n} {s}" for s, n in counts.items())
    lines = [f"# Sweep: study {study.study_name}", ""]
    lines.append(f"{len(rows)} trial{'' if len(rows) == 1 else 's'} ({states}).")
    if best is not None:
        lines.append(
            f"Best: trial {best.number}, validation loss {best.value:.4f} nats/char "
            f"(settings in {BEST_FILE})."
        )
    lines += ["", "Searched:", ""]
    lines += [f"- {n}: {_describe(_distribution(trials, n))}" for n in names]
    lines += ["", "| trial | state | " + " | ".join(names) + " | best val loss | steps |"]
    lines.append("|---:|---|" + "---:|" * len(names) + "---:|---:|")
    for r in rows:
        loss = "" if r.best_val_loss is None else f"{r.best_val_loss:.4f}"
        steps = "" if r.steps is None else str(r.steps)
        cells = [_cell(r.params.get(n)) for n in names]
        mark = " (best)" if best is not None and r.number == best.number else ""
        lines.append(
            f"| {r.number}{mark} | {r.state.lower()} | "
            + " | ".join(cells)
            + f" | {loss} | {steps} |"
        )
    return "\n".join(lines) + "\n"


def _plot(
    path: Path, trials: Sequence[FrozenTrial], names: Sequence[str], best: FrozenTrial | None
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    shown = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        and isinstance(t.user_attrs.get("best_val_loss"), int | float)
        and math.isfinite(t.user_attrs["best_val_loss"])
    ]
    cols = max(1, min(3, len(names)))
    rows = max(1, math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    if not names:
        axes[0][0].set_visible(True)
        axes[0][0].text(0.5, 0.5, "no trials yet", ha="center", va="center")
    for ax, name in zip(axes.flat, names, strict=False):
        dist = _distribution(trials, name)
        # choices sit evenly spaced, in the order the space lists them
        labels = [str(c) for c in dist.choices] if isinstance(dist, CategoricalDistribution) else []
        for state, filled in ((TrialState.COMPLETE, True), (TrialState.PRUNED, False)):
            group = [t for t in shown if t.state == state and name in t.params]
            if not group:
                continue
            xs = [_x(t.params[name], labels) for t in group]
            ys = [float(t.user_attrs["best_val_loss"]) for t in group]
            ax.scatter(
                xs,
                ys,
                s=24,
                facecolors="tab:blue" if filled else "none",
                edgecolors="tab:blue",
                label=state.name.lower(),
            )
        if best is not None and name in best.params:
            ax.scatter(
                [_x(best.params[name], labels)],
                [best.value],
                s=90,
                marker="*",
                color="tab:red",
                zorder=3,
                label="best",
            )
        if isinstance(dist, FloatDistribution | IntDistribution) and dist.log:
            ax.set_xscale("log")
            wide = math.log10(dist.high / dist.low) > 3  # labels at 1 and 3 would touch
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0,) if wide else (1.0, 3.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if labels:
            ax.set_xticks(range(len(labels)), labels)
            ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_xlabel(name)
        ax.set_ylabel("best val loss (nats/char)")
        ax.grid(True, alpha=0.3)
    if names:
        axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _x(value: Any, labels: Sequence[str]) -> float:
    return float(labels.index(str(value))) if labels else float(value)


def _write_text(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode("utf-8"))
    return path
