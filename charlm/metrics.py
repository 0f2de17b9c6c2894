"""The machine-readable training log: one JSON object per line in `metrics.jsonl`.

Rows carry `kind` ("train" or "eval"), `step` and `time_s` (training wall time since
the run began, resumed runs included; evaluation counts, drawing plots does not).
Each row is flushed as it is written, so the log can be followed while training runs.
NaN and infinity are written as null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import IO, Any

__all__ = ["METRICS_FILE", "MetricsLog", "read_metrics"]

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends rows to `<directory>/metrics.jsonl`."""

    def __init__(self, directory: str | Path, *, keep_through_step: int | None = None) -> None:
        """Open the log; a fresh run (`keep_through_step` None) starts it empty.

        A resumed run keeps the rows up to and including `keep_through_step` and drops
        later ones, which were written after the checkpoint it resumes from.
        """
        self.path = Path(directory) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept: list[str] = []
        if keep_through_step is not None and self.path.exists():
            for row in read_metrics(self.path):
                if int(row.get("step", 0)) <= keep_through_step:
                    kept.append(json.dumps(row))
        self._file: IO[str] = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        for line in kept:
            self._file.write(line + "\n")
        self._file.flush()

    def write(self, **row: Any) -> None:
        self._file.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a metrics log; a torn last line (from a crash) is skipped."""
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows
