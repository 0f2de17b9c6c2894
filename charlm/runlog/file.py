"""The file of a run's training log, `metrics.jsonl`: appended to while the run trains,
read back as its history.

`MetricsLog` appends rows (`rows.Row`), one JSON object a line, flushing each so the log
can be followed while training runs; NaN and infinity are written as null. The file is
only ever appended to. A fresh run starts it empty; a resumed run appends a `ResumeRow`
(step N), and `read_metrics` drops the rows before it whose step is beyond N (they were
written after the checkpoint the run resumed from). A crash can therefore lose at most
the row being written, never the rows before it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import IO

from charlm.errors import CheckpointError
from charlm.files import FileKind, open_regular
from charlm.runlog.rows import ResumeRow, Row, json_safe, parse_row

__all__ = ["METRICS_FILE", "MetricsLog", "NullLog", "read_metrics"]

METRICS_FILE = "metrics.jsonl"
_METRICS_LOGS = FileKind("metrics logs", None, CheckpointError)


class MetricsLog:
    """Appends rows to `<directory>/metrics.jsonl`."""

    def __init__(self, directory: str | Path, *, resumed_at: int | None = None) -> None:
        """Open the log: empty for a fresh run (`resumed_at` None), else appended to, after
        a row saying that the run resumed at step `resumed_at`."""
        self.path = Path(directory) / METRICS_FILE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            mode = "w" if resumed_at is None else "a"
            self._file: IO[str] = open(self.path, mode, encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            raise CheckpointError(f"{self.path}: cannot open it ({e.strerror or e})") from e
        if resumed_at is not None:
            if self._file.tell() > 0 and not _ends_with_newline(self.path):
                self._file.write("\n")  # end a line torn by a crash: it stays unreadable alone
            self.write(ResumeRow(step=resumed_at))

    def write(self, row: Row) -> None:
        try:
            self._file.write(json.dumps(json_safe(row.to_json())) + "\n")
            self._file.flush()
        except OSError as e:
            raise CheckpointError(f"{self.path}: could not write it ({e.strerror or e})") from e

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as e:  # the last flush failed: the rows before it are on disk
            raise CheckpointError(f"{self.path}: could not write it ({e.strerror or e})") from e


class NullLog:
    """A `MetricsLog` that writes nothing: the log of a data-parallel rank other than 0."""

    def write(self, row: Row) -> None: ...

    def close(self) -> None: ...


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


def read_metrics(path: str | Path) -> list[Row]:
    """The rows of a metrics log as the run's history: a torn last line (from a crash)
    and a malformed row are skipped, and rows that a resume superseded are dropped. A
    path that is not a regular file (`charlm.files`) is a CheckpointError."""
    rows: list[Row] = []
    raw = open_regular(path, str(path), _METRICS_LOGS)  # a regular file: a FIFO never blocks
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = parse_row(json.loads(line))
            except (ValueError, RecursionError):
                continue
            if isinstance(row, ResumeRow):
                rows = [r for r in rows if r.step <= row.step]
            elif row is not None:
                rows.append(row)
    return rows
