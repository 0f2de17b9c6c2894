"""From the values of a log's line to the rows the detectors read (`charlm.runlog`'s
typed rows): each value checked (a number where a field must be one, a whole number for
a step, an epoch or a counter), the step of each row (`Steps`: a step column, or a
counter joined across epochs, an epoch, or the order of the lines), and a long log's rows
thinned (`thinned`). A name read as no field is kept with its row: as one of the row's
`Signals` where it names one (`grad_norms`, `gates`, ...: a charlm log's), else in its
`columns`. `ReadNotes` records how a log was read as this goes. The formats that give the
values are in `logs`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charlm.diagnostics.fields import FIELDS
from charlm.diagnostics.findings import Finding
from charlm.diagnostics.references import ReferenceLevels
from charlm.errors import InputError
from charlm.runlog import (
    SIGNALS,
    EvalRow,
    FindingRow,
    NonfiniteRow,
    ReferenceRow,
    Row,
    Signals,
    TrainRow,
)

__all__ = ["ReadNotes", "Steps", "Values", "is_number", "rows_of", "thinned"]

Values = dict[str, Any]
"""A line's values by field (or by their own name, for a name read as no field)."""

_NUMBERS = ("loss", "val_loss", "accuracy", "val_accuracy", "grad_norm", "lr")
"""The fields that must be numbers (a step, an epoch and a counter must be whole)."""


@dataclass
class ReadNotes:
    """How a log was read, filled in as its rows are: its format, what each name was
    read as, the names kept as they are, where the steps came from, and the lines
    skipped for having no loss."""

    format: str
    read_as: dict[str, str] = field(default_factory=dict)
    """A name in the file -> the field read from it (`Error` -> `loss`)."""
    kept: list[str] = field(default_factory=list)
    """Names in the file read as no field, kept with the rows."""
    steps_from: str = ""
    """`step`, `iteration`, `epoch and iteration`, `epoch` or `order` (the lines' order)."""
    skipped: int = 0
    first_skipped: int | None = None

    def note(self, name: str, field_name: str | None) -> None:
        """`name` of the file was read as `field_name` (None: kept as it is)."""
        if field_name is None:
            if name not in self.kept and name not in ("kind", *self.read_as):
                self.kept.append(name)
        else:
            self.read_as.setdefault(name, field_name)

    def skip(self, line: int) -> None:
        self.skipped += 1
        if self.first_skipped is None:
            self.first_skipped = line


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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


def _whole(path: Path, line: int, column: str, value: Any) -> int:
    number = _number(path, line, column, value)
    if number is None or not math.isfinite(number) or number != int(number) or number < 0:
        raise InputError(f"{path}, line {line}: {column} is {value!r}, not a whole number")
    return int(number)


class Steps:
    """The step of each row (see the module docstring), recording in the notes where
    the steps came from."""

    def __init__(self, path: Path, notes: ReadNotes) -> None:
        self.path, self.notes = path, notes
        self.losses = 0  # training losses read so far (the step of a line by order)
        self.epoch: int | None = None
        self.counter: int | None = None
        self.top = 0  # the largest counter of the current epoch
        self.base: int | None = None  # the first counter of the file: 0 or 1 based
        self.offset = 0  # the steps of the epochs before the current one

    def of(self, line: int, values: Values, trains: bool) -> int:
        counter_field = next((f for f in ("step", "iteration") if f in values), None)
        epoch = _whole(self.path, line, "epoch", values["epoch"]) if "epoch" in values else None
        self.losses += trains
        if counter_field is None:
            if epoch is not None:
                self._source("epoch")
                return epoch
            self._source("order")
            return max(self.losses, 1)
        counter = _whole(self.path, line, counter_field, values[counter_field])
        if self.base is None:
            self.base = 0 if counter == 0 else 1
        restarted = (
            epoch is not None
            and self.epoch is not None
            and epoch > self.epoch
            and self.counter is not None
            and counter <= self.counter
        )
        if restarted:
            self.offset += self.top + (1 if self.base == 0 else 0)
            self.top = 0
            self._source(f"epoch and {counter_field}")
        elif not self.notes.steps_from:
            self._source(counter_field)
        if epoch is not None:
            self.epoch = epoch
        self.counter = counter
        self.top = max(self.top, counter)
        return self.offset + counter

    def _source(self, name: str) -> None:
        if not self.notes.steps_from.startswith("epoch and"):
            self.notes.steps_from = name


def rows_of(path: Path, line: int, values: Values, steps: Steps) -> list[Row]:
    """The rows of a line's values (a training row, an evaluation, or both; none for a
    line without a loss); an InputError for a value that is not what its field needs."""
    kind = values.get("kind")
    if kind == "finding":
        finding = Finding.from_dict(values)
        if finding is None:
            raise InputError(
                f"{path}, line {line}: a finding row needs name, step, seen, causes and advice"
            )
        return [FindingRow(finding)]
    if kind == "reference":
        references = ReferenceLevels.from_dict(values)
        return [] if references is None else [ReferenceRow(references)]
    numbers = {c: _number(path, line, c, values.get(c)) for c in _NUMBERS}
    trains = numbers["loss"] is not None and kind in (None, "train")
    evaluates = kind in (None, "eval") and (
        numbers["val_loss"] is not None or numbers["val_accuracy"] is not None
    )
    if not (trains or evaluates):
        return []
    step = steps.of(line, values, trains)
    out: list[Row] = []
    loss = numbers["loss"]
    if trains and loss is not None and not math.isfinite(loss):
        out.append(NonfiniteRow(step=step, loss=loss, lr=numbers["lr"]))
    elif trains:
        kept = {k: _kept(v) for k, v in values.items() if k not in FIELDS and k != "kind"}
        out.append(
            TrainRow(
                step=step,
                loss=loss,
                grad_norm=numbers["grad_norm"],
                lr=numbers["lr"],
                accuracy=numbers["accuracy"],
                signals=Signals.from_json(kept),
                columns={k: v for k, v in kept.items() if k not in SIGNALS},
            )
        )
    if evaluates:
        out.append(
            EvalRow(step=step, val_loss=numbers["val_loss"], val_accuracy=numbers["val_accuracy"])
        )
    return out


def _kept(value: Any) -> Any:
    """A value of a column read as no field: a number where it reads as one."""
    if isinstance(value, str) and is_number(value):
        return float(value)
    return value


def thinned(rows: Iterator[Row], every: int) -> Iterator[Row]:
    """`rows` with each `every` consecutive training rows merged into one, and the
    evaluation rows among them into one; of the rows whose loss is not finite, the
    first in each such stretch is kept. The merged rows of a stretch come out in the
    order their first rows came in; other rows (findings) pass as they come."""
    group = _Group()
    for row in rows:
        if not isinstance(row, TrainRow | EvalRow | NonfiniteRow):
            yield row
            continue
        if isinstance(row, TrainRow) and group.trains == every:
            yield from group.merged()
            group = _Group()
        group.add(row)
    yield from group.merged()


@dataclass
class _Mean:
    """The sum and count of the values of a field that rows logged."""

    total: float = 0.0
    count: int = 0

    def add(self, value: float | None) -> None:
        if value is not None:
            self.total += value
            self.count += 1

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class _Group:
    """The rows of a stretch of `every` training rows, merged as they come."""

    order: list[type[Row]] = field(default_factory=list)
    """The kinds of row in the order their first row came."""
    trains: int = 0
    loss: _Mean = field(default_factory=_Mean)
    accuracy: _Mean = field(default_factory=_Mean)
    val_loss: _Mean = field(default_factory=_Mean)
    val_accuracy: _Mean = field(default_factory=_Mean)
    last: TrainRow | None = None
    grad_norm: float | None = None
    """The largest gradient norm."""
    lr: float | None = None
    """The last learning rate."""
    eval_step: int = 0
    nonfinite: NonfiniteRow | None = None

    def add(self, row: TrainRow | EvalRow | NonfiniteRow) -> None:
        if type(row) not in self.order:
            self.order.append(type(row))
        if isinstance(row, TrainRow):
            self.trains += 1
            self.loss.add(row.loss)
            self.accuracy.add(row.accuracy)
            self.last = row
            g, top = row.grad_norm, self.grad_norm
            # the largest, where a NaN counts as larger than any number (it is the one to see)
            if g is not None and (top is None or (not math.isnan(top) and not g <= top)):
                self.grad_norm = g
            self.lr = row.lr if row.lr is not None else self.lr
        elif isinstance(row, EvalRow):
            self.val_loss.add(row.val_loss)
            self.val_accuracy.add(row.val_accuracy)
            self.eval_step = row.step
        elif self.nonfinite is None:
            self.nonfinite = row

    def merged(self) -> Iterator[Row]:
        for kind in self.order:
            if kind is TrainRow and self.last is not None:
                yield dataclasses.replace(
                    self.last,
                    loss=self.loss.mean(),
                    accuracy=self.accuracy.mean(),
                    grad_norm=self.grad_norm,
                    lr=self.lr,
                )
            elif kind is EvalRow:
                yield EvalRow(
                    step=self.eval_step,
                    val_loss=self.val_loss.mean(),
                    val_accuracy=self.val_accuracy.mean(),
                )
            elif kind is NonfiniteRow and self.nonfinite is not None:
                yield self.nonfinite
