"""Reading the training log of a loop charlm did not run, so its curve gets the same reading.

A log is a CSV file with a header row, or a JSON Lines file with one object per line.
Columns (keys): `step` and `loss` are required; `val_loss`, `grad_norm` and `lr` are read
when present. An empty cell (or a missing key, or null) means "not logged at this step",
so a row may carry only a validation loss. charlm's own metrics.jsonl reads as it is.

Every problem is an `InputError` that names the file and the line: an empty file, a
missing column, a value that is not a number, a row with neither loss.

A log is streamed, never read whole: it must be a regular file of at most
`MAX_LOG_BYTES`, and each line at most `MAX_LINE_BYTES`. `open_log` first counts the
lines (a fast pass that parses nothing); a log of more lines than `MAX_TRAIN_ROWS` is then
read thinned, `every` lines to one: each `every` consecutive training rows become one
(their mean loss, the last step, the largest gradient norm, the last learning rate and
signals), and the evaluation rows among them one (their mean validation loss, the last
step), so that however long the log, at most `MAX_TRAIN_ROWS` training rows reach the
detectors. `read_log` returns every row as it is.

Each format is a row source: a function from the file's lines to (line number, values)
pairs. A new format is one more function in `_SOURCES` and its test in `_source_of`.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from charlm.errors import InputError
from charlm.files import FileKind, format_size, loads_json, open_regular

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_LOG_BYTES",
    "MAX_TRAIN_ROWS",
    "OPTIONAL",
    "REQUIRED",
    "Log",
    "open_log",
    "read_log",
]

REQUIRED = ("step", "loss")
OPTIONAL = ("val_loss", "grad_norm", "lr")
MAX_LOG_BYTES = 512 * 2**20
"""The largest log read (about 15 million CSV rows)."""
MAX_LINE_BYTES = 2**20
"""The longest line read; a charlm row of a 64-layer model is about 30 KB."""
MAX_TRAIN_ROWS = 50_000
"""The most training rows a diagnosis holds; a longer log is thinned to this many."""
MAX_ROW_DEPTH = 8
"""Deepest nesting of a JSON row (charlm's rows nest 4 deep: row, gates, layer, gate)."""
_LOGS = FileKind("logs", MAX_LOG_BYTES, InputError)
_EXTRAS = ("grad_norms", "update_ratios", "gates", "cell", "clipped")
"""Signals a charlm row carries that are kept as they are (not numbers to check)."""

Values = dict[str, Any]
Lines = Iterator[tuple[int, str]]
RowSource = Callable[[Path, Lines], Iterator[tuple[int, Values]]]
"""A format: (path, the file's lines numbered from 1) -> (line number, values) pairs."""


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The log's rows as the detectors take them: {"kind": "train", "step", "loss", ...}
    and {"kind": "eval", "step", "val_loss"}, in file order, none merged."""
    with open_log(path, max_train_rows=None) as log:
        return list(log.rows())


def open_log(path: str | Path, *, max_train_rows: int | None = MAX_TRAIN_ROWS) -> Log:
    """The log at `path`, open and counted (see the module docstring), to be read with
    `Log.rows()`; `max_train_rows` None never thins it."""
    path = Path(path)
    f = open_regular(path, str(path), _LOGS)
    try:
        lines, end, first = _survey(f, path)
    except BaseException:
        f.close()
        raise
    if not first:
        f.close()
        raise InputError(f"{path}: the file is empty; expected a header row and one row per step")
    every = 1 if max_train_rows is None else max(1, -(-lines // max_train_rows))
    return Log(path, lines, every, f, end, _source_of(path, first))


@dataclass
class Log:
    """An open log: its `lines`, and `every`, how many training rows make one of
    `rows()` (1: the log is read as it is)."""

    path: Path
    lines: int
    every: int
    _file: BinaryIO = field(repr=False)
    _end: int = field(repr=False)
    _source: RowSource = field(repr=False)

    def rows(self) -> Iterator[dict[str, Any]]:
        """The rows, thinned `every` to one; an InputError at the end if no line had a
        training loss."""
        trained = False

        def parsed() -> Iterator[dict[str, Any]]:
            nonlocal trained
            text = _text_lines(self._file, self.path, self._end)
            for line, values in self._source(self.path, text):
                for row in _rows(self.path, line, values):
                    trained = trained or row["kind"] != "eval"
                    yield row

        yield from parsed() if self.every == 1 else _thinned(parsed(), self.every)
        if not trained:
            raise InputError(
                f"{self.path}: no line has a training loss (the 'loss' column is empty)"
            )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Log:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _survey(f: BinaryIO, path: Path) -> tuple[int, int, bytes]:
    """(lines, bytes, first byte that is not blank) of the log, read a chunk at a time;
    an InputError at the first line longer than `MAX_LINE_BYTES`."""
    lines = end = run = 0  # run: bytes of the line not yet ended
    first = b""
    while chunk := _read(f, path, MAX_LINE_BYTES):
        end += len(chunk)
        first = first or chunk.lstrip()[:1]
        ends = chunk.count(b"\n")
        # A line inside one chunk is no longer than the chunk, so only the line that runs
        # into the chunk (and the one still running at its end) can be too long.
        head = chunk.find(b"\n") + 1 if ends else len(chunk)
        if run + head > MAX_LINE_BYTES:
            raise _too_long(path, lines + 1)
        run = len(chunk) - chunk.rfind(b"\n") - 1 if ends else run + len(chunk)
        lines += ends
    return lines + (run > 0), end, first


def _text_lines(f: BinaryIO, path: Path, end: int) -> Lines:
    """The first `end` bytes of the log as numbered text lines, split as `str.splitlines`
    splits (numbered as in the whole text so split), decoded a chunk of whole lines at a
    time."""
    f.seek(0)
    left, carry, number, physical = end, b"", 0, 1
    while left > 0 or carry:
        block = _read(f, path, min(MAX_LINE_BYTES, left)) if left > 0 else b""
        left = left - len(block) if block else 0
        data = carry + block
        cut = data.rfind(b"\n") + 1 if left > 0 else len(data)
        if cut == 0:  # no line ends in this chunk yet
            if len(data) > MAX_LINE_BYTES:
                raise _too_long(path, physical)
            carry = data
            continue
        data, carry = data[:cut], data[cut:]
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            line = physical + data.count(b"\n", 0, e.start)
            raise InputError(f"{path}, line {line}: cannot read it as UTF-8 text ({e})") from e
        physical += data.count(b"\n")
        for piece in text.splitlines():
            number += 1
            yield number, piece


def _read(f: BinaryIO, path: Path, n: int) -> bytes:
    try:
        return f.read(n)
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from e


def _too_long(path: Path, line: int) -> InputError:
    limit = format_size(MAX_LINE_BYTES)
    return InputError(
        f"{path}, line {line}: longer than {limit}; log lines over {limit} are refused"
    )


# -- the formats ----------------------------------------------------------------------


def _jsonl(path: Path, lines: Lines) -> Iterator[tuple[int, Values]]:
    for n, line in lines:
        if not line.strip():
            continue
        try:
            value = loads_json(line, f"{path}, line {n}", _LOGS, MAX_ROW_DEPTH)
        except (ValueError, RecursionError) as e:
            raise InputError(f"{path}, line {n}: not a JSON object ({e})") from e
        if not isinstance(value, dict):
            raise InputError(f"{path}, line {n}: a JSON {type(value).__name__}, not an object")
        if value.get("kind") in ("resume", "diagnosis", "reference"):
            continue  # charlm's own bookkeeping rows
        yield n, value


def _csv(path: Path, lines: Lines) -> Iterator[tuple[int, Values]]:
    reader = csv.reader(text for _, text in lines)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise InputError(
                f"{path}, line 1: no {' or '.join(repr(c) for c in missing)} column; the "
                f"header has {', '.join(repr(h) for h in header) or 'nothing'} (needed: "
                f"step, loss; optional: {', '.join(OPTIONAL)})"
            )
        for n, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                raise InputError(f"{path}, line {n}: {len(cells)} values for {len(header)} columns")
            yield n, {h: c.strip() for h, c in zip(header, cells, strict=True) if c.strip() != ""}
    except csv.Error as e:  # a NUL byte, a cell over the csv module's field limit
        raise InputError(f"{path}, line {reader.line_num}: not readable as CSV ({e})") from e


_SOURCES: dict[str, RowSource] = {"jsonl": _jsonl, "csv": _csv}


def _source_of(path: Path, first: bytes) -> RowSource:
    """The format of a log, from its suffix or its first character."""
    jsonl = path.suffix.lower() in (".jsonl", ".json", ".ndjson") or first == b"{"
    return _SOURCES["jsonl" if jsonl else "csv"]


# -- rows -----------------------------------------------------------------------------


def _number(path: Path, line: int, column: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"{path}, line {line}: {column} is {value!r}, not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"{path}, line {line}: {column} is {value!r}, not a number") from None
        return number
    raise InputError(f"{path}, line {line}: {column} is {value!r}, not a number")


def _rows(path: Path, line: int, values: dict[str, Any]) -> list[dict[str, Any]]:
    if "step" not in values:
        raise InputError(f"{path}, line {line}: no step")
    step = _number(path, line, "step", values["step"])
    if step is None or not math.isfinite(step) or step != int(step) or step < 0:
        raise InputError(f"{path}, line {line}: step is {values['step']!r}, not a whole number")
    numbers = {c: _number(path, line, c, values.get(c)) for c in ("loss", *OPTIONAL)}
    kind = values.get("kind")
    out: list[dict[str, Any]] = []
    if numbers["loss"] is not None and kind in (None, "train"):
        loss = numbers["loss"]
        row: dict[str, Any] = {
            "kind": "train" if math.isfinite(loss) else "nonfinite",
            "step": int(step),
            "loss": loss,
        }
        row.update({c: numbers[c] for c in ("grad_norm", "lr") if numbers[c] is not None})
        for extra in _EXTRAS:
            if extra in values:
                row[extra] = values[extra]
        out.append(row)
    if numbers["val_loss"] is not None and kind in (None, "eval"):
        out.append({"kind": "eval", "step": int(step), "val_loss": numbers["val_loss"]})
    if not out and kind is None:
        raise InputError(f"{path}, line {line}: neither loss nor val_loss has a value")
    return out


def _thinned(rows: Iterator[dict[str, Any]], every: int) -> Iterator[dict[str, Any]]:
    """`rows` with each `every` consecutive training rows merged into one, and the
    evaluation rows among them into one; of the rows whose loss is not finite, the
    first in each such stretch is kept. The merged rows of a stretch come out in the
    order their first rows came in."""
    group = _Group()
    for row in rows:
        if row["kind"] == "train" and group.trains == every:
            yield from group.merged()
            group = _Group()
        group.add(row)
    yield from group.merged()


@dataclass
class _Group:
    """The rows of a stretch of `every` training rows, merged as they come."""

    order: list[str] = field(default_factory=list)
    """The kinds of row in the order their first row came."""
    trains: int = 0
    loss_sum: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)
    grad_norm: float | None = None
    """The largest gradient norm."""
    lr: float | None = None
    """The last learning rate."""
    evals: int = 0
    val_sum: float = 0.0
    eval_step: int = 0
    nonfinite: dict[str, Any] | None = None

    def add(self, row: dict[str, Any]) -> None:
        kind = row["kind"]
        if kind not in self.order:
            self.order.append(kind)
        if kind == "train":
            self.trains += 1
            self.loss_sum += row["loss"]
            self.last = row
            g, top = row.get("grad_norm"), self.grad_norm
            # the largest, where a NaN counts as larger than any number (it is the one to see)
            if g is not None and (top is None or (not math.isnan(top) and not g <= top)):
                self.grad_norm = g
            self.lr = row.get("lr", self.lr)
        elif kind == "eval":
            self.evals += 1
            self.val_sum += row["val_loss"]
            self.eval_step = row["step"]
        elif self.nonfinite is None:
            self.nonfinite = row

    def merged(self) -> Iterator[dict[str, Any]]:
        for kind in self.order:
            if kind == "train":
                row = {**self.last, "loss": self.loss_sum / self.trains}
                if self.grad_norm is not None:
                    row["grad_norm"] = self.grad_norm
                if self.lr is not None:
                    row["lr"] = self.lr
                yield row
            elif kind == "eval":
                yield {
                    "kind": "eval",
                    "step": self.eval_step,
                    "val_loss": self.val_sum / self.evals,
                }
            elif self.nonfinite is not None:
                yield self.nonfinite
