"""Reading the training log of a loop charlm did not run, so its curve gets the same reading.

The formats, told apart by the file's name and its first line that is not blank:

- JSON Lines (`.jsonl`, `.json`, `.ndjson`, or a first line that opens with `{`): one
  object a line. charlm's metrics.jsonl reads as it is (its `reference` row included);
  so does the log of `charlm.watch`, whose `{"kind": "finding", ...}` rows are read as
  the watcher's findings.
- Columns with a header: CSV, TSV (a tab in the header), `;`-separated, or
  whitespace-separated, the first line naming the columns. Keras's `CSVLogger`
  (`epoch,accuracy,loss,val_accuracy,val_loss`) and PyTorch Lightning's `metrics.csv`
  (sparse rows: each holds only some of the columns) read as they are. A first line is a
  header when none of its fields is a number and one of them is a known column.
- Printed lines: anything else, such as a loop's captured stdout. Each line is read for
  named numbers (`step 10 loss 0.5`, `loss: 0.123`, `Epoch 1 Iteration 5 Error = 0.123`,
  `Epoch [1/10], Step [100/600], Loss: 0.2345`, `... - loss: 0.6685 - val_loss: 0.8688`,
  `tensor(0.1234, grad_fn=<AddBackward0>)`; see `printed`); a line of numbers alone is
  `loss` (one number) or `step loss` (two, the first whole: a header-less two-column
  file, with commas, tabs or spaces). Lines with no loss in them (a banner, a test
  accuracy) are skipped and counted.

Column names (JSON keys, printed names) are read as fields through one table of
synonyms, `fields.FIELDS`, the first present winning (the others are kept as they are).
Names beyond those are kept with the row, not dropped: a row carries every column of
its line.

Steps: the `step` column (`global_step`, ...); else an `iteration` counter (`iter`,
`batch`, ...), joined with `epoch` when it restarts at each epoch (the epochs' lengths
taken from the largest counter logged in each); else `epoch`, one step an epoch (a Keras
history); else the order of the lines with a loss (the first is step 1). `Log.read` says
afterwards which it was, how the columns were read, and what was skipped.

Every problem is an `InputError` that names the file and the line: an empty file, a
header with no loss column, a value that is not a number, a row of the wrong length, no
line with a training loss at all. A TensorBoard event file is refused with what to
export instead (no TensorBoard reader is a dependency of charlm).

A log is streamed, never read whole: it must be a regular file of at most
`MAX_LOG_BYTES`, and each line at most `MAX_LINE_BYTES`. `open_log` first counts the
lines (a fast pass that parses nothing); a log of more lines than `MAX_TRAIN_ROWS` is then
read thinned, `every` lines to one: each `every` consecutive training rows become one
(their mean loss and accuracy, the last step, the largest gradient norm, the last
learning rate and other columns), and the evaluation rows among them one (their mean
validation loss and accuracy, the last step), so that however long the log, at most
`MAX_TRAIN_ROWS` training rows reach the detectors. `read_log` returns every row as it is.

Each format is a row source: a function from the file's lines to (line number, values)
pairs. A new format is one more function in `_SOURCES` and its test in `_layout`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from charlm.diagnostics import printed
from charlm.diagnostics.fields import FIELDS, by_field, normalize, read_as
from charlm.diagnostics.log_rows import ReadNotes, Steps, Values, is_number, rows_of, thinned
from charlm.errors import InputError
from charlm.files import FileKind, format_size, loads_json, open_regular
from charlm.runlog import NonfiniteRow, Row, TrainRow

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_LOG_BYTES",
    "MAX_TRAIN_ROWS",
    "Log",
    "ReadNotes",
    "open_log",
    "read_log",
]

_CHARLM_ROWS = ("resume", "diagnosis")
"""charlm's own bookkeeping rows, not read (its findings are made again by the replay)."""
MAX_LOG_BYTES = 512 * 2**20
"""The largest log read (about 15 million CSV rows)."""
MAX_LINE_BYTES = 2**20
"""The longest line read; a charlm row of a 64-layer model is about 30 KB."""
MAX_TRAIN_ROWS = 50_000
"""The most training rows a diagnosis holds; a longer log is thinned to this many."""
MAX_ROW_DEPTH = 8
"""Deepest nesting of a JSON row (charlm's rows nest 4 deep: row, gates, layer, gate)."""
_LOGS = FileKind("logs", MAX_LOG_BYTES, InputError)

Lines = Iterator[tuple[int, str]]


RowSource = Callable[[Path, Lines, ReadNotes], Iterator[tuple[int, Values]]]
"""A format: (path, the file's lines numbered from 1, the notes to fill) -> (line
number, values by field) pairs."""


def read_log(path: str | Path) -> list[Row]:
    """The log's rows as the detectors take them (`charlm.runlog`'s rows: training rows,
    evaluations, the watcher's findings, charlm's reference levels), in file order, none
    merged."""
    with open_log(path, max_train_rows=None) as log:
        return list(log.rows())


def open_log(path: str | Path, *, max_train_rows: int | None = MAX_TRAIN_ROWS) -> Log:
    """The log at `path`, open and counted (see the module docstring), to be read with
    `Log.rows()`; `max_train_rows` None never thins it."""
    path = Path(path)
    if "tfevents" in path.name:
        raise InputError(
            f"{path}: a TensorBoard event file, which charlm does not read (no TensorBoard "
            "reader is installed with it); export the scalars instead: in TensorBoard's "
            "Scalars tab, the loss chart's download link gives a CSV (Wall time, Step, "
            "Value), which reads as it is, or log step and loss to a CSV file as you train"
        )
    f = open_regular(path, str(path), _LOGS)
    try:
        lines, end, first = _survey(f, path)
        if not first:
            raise InputError(
                f"{path}: the file is empty; expected a header row and one row per step, "
                "JSON Lines, or printed lines with a loss in them"
            )
        source, fmt = _layout(path, _first_line(f, path, end))
    except BaseException:
        f.close()
        raise
    every = 1 if max_train_rows is None else max(1, -(-lines // max_train_rows))
    return Log(path, lines, every, ReadNotes(fmt), f, end, source)


@dataclass
class Log:
    """An open log: its `lines`, `every`, how many training rows make one of `rows()`
    (1: the log is read as it is), and `read`, how it was read (complete once `rows()`
    has been read to its end)."""

    path: Path
    lines: int
    every: int
    read: ReadNotes
    _file: BinaryIO = field(repr=False)
    _end: int = field(repr=False)
    _source: RowSource = field(repr=False)

    def rows(self) -> Iterator[Row]:
        """The rows, thinned `every` to one; an InputError at the end if no line had a
        training loss."""
        trained = False

        def parsed() -> Iterator[Row]:
            nonlocal trained
            steps = Steps(self.path, self.read)
            text = _text_lines(self._file, self.path, self._end)
            for line, values in self._source(self.path, text, self.read):
                for row in rows_of(self.path, line, values, steps):
                    trained = trained or isinstance(row, TrainRow | NonfiniteRow)
                    yield row

        yield from parsed() if self.every == 1 else thinned(parsed(), self.every)
        if not trained:
            raise InputError(f"{self.path}: no line has a training loss{self._hint()}")

    def _hint(self) -> str:
        if self.read.format != "printed lines":
            return " (the loss column is empty)"
        where = f"; line {self.read.first_skipped} has none" if self.read.first_skipped else ""
        return (
            f"{where}. Read as printed lines, a line needs a loss in it: `loss 0.5`, "
            "`loss: 0.5`, `Error = 0.5`, `tensor(0.5, ...)`, or numbers alone (`0.5`, or "
            "`10 0.5` for step and loss); a file of columns needs a header row naming them"
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


def _first_line(f: BinaryIO, path: Path, end: int) -> str:
    """The first line of the log that is not blank."""
    return next((text for _, text in _text_lines(f, path, end) if text.strip()), "")


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


def _mapped(values: dict[str, Any], notes: ReadNotes) -> Values:
    """A row's values (by their names in the file, with a value) by field; the names read
    as no field are kept as they are."""
    names = {normalize(k): k for k in values}
    chosen = by_field(list(names))
    out: Values = {}
    taken = set()
    for f, name in chosen.items():
        original = names[name]
        out[f] = values[original]
        taken.add(original)
        notes.note(original, f)
    for k, v in values.items():
        if k not in taken:
            out.setdefault(k, v)
            notes.note(k, None)
    return out


# -- the formats ----------------------------------------------------------------------


def _jsonl(path: Path, lines: Lines, notes: ReadNotes) -> Iterator[tuple[int, Values]]:
    for n, line in lines:
        if not line.strip():
            continue
        try:
            value = loads_json(line, f"{path}, line {n}", _LOGS, MAX_ROW_DEPTH)
        except (ValueError, RecursionError) as e:
            raise InputError(f"{path}, line {n}: not a JSON object ({e})") from e
        if not isinstance(value, dict):
            raise InputError(f"{path}, line {n}: a JSON {type(value).__name__}, not an object")
        kind = value.get("kind")
        if kind in _CHARLM_ROWS:
            continue
        if kind in ("finding", "reference"):
            yield n, value
            continue
        yield n, _mapped({k: v for k, v in value.items() if v is not None}, notes)


def _columns(delimiter: str | None) -> RowSource:
    """Columns with a header, split at `delimiter` (None: at runs of blanks)."""

    def source(path: Path, lines: Lines, notes: ReadNotes) -> Iterator[tuple[int, Values]]:
        numbered = ((n, text) for n, text in lines if text.strip())
        if delimiter is None:
            cells: Iterator[tuple[int, list[str]]] = ((n, t.split()) for n, t in numbered)
        else:
            cells = _csv_cells(path, numbered, delimiter)
        start, header = next(cells)
        names = [normalize(h) for h in header]
        chosen = by_field(names)
        if "loss" not in chosen:
            raise InputError(
                f"{path}, line {start}: no 'loss' column; the header has "
                f"{', '.join(repr(h.strip()) for h in header) or 'nothing'} (needed: a loss "
                f"column, named one of {', '.join(FIELDS['loss'][:8])}, ...; see `FIELDS`)"
            )
        field_of = {names.index(name): f for f, name in chosen.items()}
        for i, h in enumerate(header):
            notes.note(h.strip(), field_of.get(i))
        for n, row in cells:
            if len(row) != len(header):
                raise InputError(f"{path}, line {n}: {len(row)} values for {len(header)} columns")
            values: Values = {}
            for i, cell in enumerate(row):
                cell = cell.strip()
                if cell:
                    values[field_of.get(i, header[i].strip())] = cell
            yield n, values

    return source


def _csv_cells(
    path: Path, numbered: Iterator[tuple[int, str]], delimiter: str
) -> Iterator[tuple[int, list[str]]]:
    where = [0]

    def texts() -> Iterator[str]:
        for n, text in numbered:
            where[0] = n
            yield text

    reader = csv.reader(texts(), delimiter=delimiter)
    try:
        for row in reader:
            yield where[0], row
    except csv.Error as e:  # a NUL byte, a cell over the csv module's field limit
        raise InputError(f"{path}, line {where[0]}: not readable as CSV ({e})") from e


def _printed(path: Path, lines: Lines, notes: ReadNotes) -> Iterator[tuple[int, Values]]:
    for n, text in lines:
        values, names = printed.read_line(text)
        if "loss" in values or "val_loss" in values:
            for name, f in names:
                notes.note(name, f)
            yield n, values
        elif text.strip():
            notes.skip(n)


_SOURCES: dict[str, RowSource] = {
    "JSON Lines": _jsonl,
    "TSV": _columns("\t"),
    "CSV": _columns(","),
    "columns separated by ';'": _columns(";"),
    "columns separated by blanks": _columns(None),
    "printed lines": _printed,
}


def _layout(path: Path, first: str) -> tuple[RowSource, str]:
    """The format of a log, from its suffix and its first line that is not blank."""
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson") or first.lstrip().startswith("{"):
        return _SOURCES["JSON Lines"], "JSON Lines"
    for delimiter, fmt in (("\t", "TSV"), (",", "CSV"), (";", "columns separated by ';'")):
        if delimiter in first:
            return (_SOURCES[fmt], fmt) if _is_header(first.split(delimiter)) else _printed_layout()
    if _is_header(first.split()):
        return _SOURCES["columns separated by blanks"], "columns separated by blanks"
    return _printed_layout()


def _printed_layout() -> tuple[RowSource, str]:
    return _SOURCES["printed lines"], "printed lines"


def _is_header(cells: list[str]) -> bool:
    """Whether a first line's fields name columns: two or more, none a number, one a
    field's name."""
    names = [c.strip().strip('"') for c in cells]
    if len(names) < 2 or any(not n or is_number(n) for n in names):
        return False
    return any(read_as(n) is not None for n in names)
