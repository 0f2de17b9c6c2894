"""What a lab experiment hands back, and how it is written out.

A `LabReport` holds one experiment's results as table rows (one per set-up and task,
aggregated over seeds), the per-run rows behind them, the notes that say what the
figures show, what charlm's watcher said about one run of each set-up (`Said`), and a
function that draws its figure. `write_report` writes `<name>.md` (the table and the notes),
`<name>.csv` (every run), `<name>.json` (all of it) and `<name>.png` into one
directory. No training here.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charlm.diagnostics.findings import Finding

__all__ = ["LabReport", "Said", "heard", "spread", "tally", "write_report"]

Figure = Callable[[Any], None]
"""Draws the experiment's figure on a matplotlib Figure."""


@dataclass(frozen=True)
class Said:
    """What the watcher said about one run: its set-up, which run it was (a seed), and
    the findings, in the order they fired; each quoted by what it saw, and (`causes`)
    what it names as the likely causes too."""

    setup: str
    run: str
    findings: list[Finding]
    causes: bool = False

    def markdown(self) -> str:
        head = f"- **{self.setup}** ({self.run}):"
        if not self.findings:
            return f"{head} nothing."
        quotes = []
        for f in self.findings:
            passed = f" (passed: {f.passed})" if f.passed else ""
            likely = f' (likely: "{f.causes}")' if self.causes else ""
            quotes.append(f'`{f.name}` at step {f.step}{passed}: "{f.seen}"{likely}')
        return f"{head} " + "; ".join(quotes) + "."

    def to_dict(self) -> dict[str, Any]:
        return {
            "setup": self.setup,
            "run": self.run,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class LabReport:
    name: str
    title: str
    columns: list[str]
    """The table's columns; each table row holds a value for each."""
    table: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    """One row per trained model (set-up, task, seed and its figures): the CSV. Keys that
    start with "_" are the experiment's own (curves, quotes) and are not written."""
    notes: list[str] = field(default_factory=list)
    said: list[Said] = field(default_factory=list)
    """The watcher's words on one run of each set-up."""
    seconds: float = 0.0
    command: str = ""
    """The command that produced it (set by `charlm.lab.run_experiment`)."""
    draw: Figure | None = None

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", f"`{self.command}` ({self.seconds:.0f} s)", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.table:
            lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in self.columns) + " |")
        lines.append("")
        lines.extend(f"- {note}" for note in self.notes)
        if self.said:
            lines += ["", "### What the watcher said", ""]
            lines.append(
                "Each loop runs under `charlm.watch(model, optimizer)` with `step(loss, "
                "**metrics)` once a step; its findings on one run of each set-up, each with "
                "the step it fired and what it saw:"
            )
            lines.append("")
            lines.extend(s.markdown() for s in self.said)
        return "\n".join(lines).rstrip() + "\n"

    def csv(self) -> str:
        runs = self._public_runs()
        keys: list[str] = []
        for run in runs:
            keys.extend(k for k in run if k not in keys)
        out = io.StringIO()
        writer = csv.DictWriter(out, keys, lineterminator="\n")
        writer.writeheader()
        for run in runs:
            writer.writerow({k: _cell(v) for k, v in run.items()})
        return out.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "command": self.command,
            "seconds": round(self.seconds, 1),
            "columns": self.columns,
            "table": self.table,
            "runs": self._public_runs(),
            "notes": self.notes,
            "said": [s.to_dict() for s in self.said],
        }

    def _public_runs(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in run.items() if not k.startswith("_")} for run in self.runs]


def write_report(report: LabReport, out: Path) -> list[Path]:
    """Write the report's markdown, CSV, JSON and PNG (if it draws one) into `out`; the
    paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / f"{report.name}.{kind}" for kind in ("md", "csv", "json")]
    written[0].write_text(report.markdown(), encoding="utf-8")
    written[1].write_text(report.csv(), encoding="utf-8")
    written[2].write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
    if report.draw is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(9, 5), dpi=100)
        try:
            report.draw(fig)
            fig.tight_layout()
            fig.savefig(out / f"{report.name}.png")
        finally:
            plt.close(fig)
        written.append(out / f"{report.name}.png")
    return written


def heard(findings: list[Finding]) -> str:
    """The watcher's findings by name, in the order they fired ("(passed)" after those
    the run got past); "nothing" when there are none."""
    return " ".join(f.name + ("(passed)" if f.passed else "") for f in findings) or "nothing"


def tally(heards: Sequence[str]) -> str:
    """How many runs the watcher said each thing about, from their `heard` strings:
    "gradients_accumulate 5/5", "nothing 3/5"."""
    counts: dict[str, int] = {}
    for line in heards:
        for name in line.split():
            counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{name} {n}/{len(heards)}" for name, n in counts.items())


def spread(values: Sequence[float], digits: int = 4) -> str:
    """The median of `values`, with their range when there are several."""
    if not values:
        return "-"
    mid = statistics.median(values)
    if len(values) == 1 or min(values) == max(values):
        return f"{mid:.{digits}f}"
    return f"{mid:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
