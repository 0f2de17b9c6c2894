"""The rows of a run's training log (`metrics.jsonl`) as typed records: how each is
written as a JSON object, and the one function that reads one back (`parse_row`).

A row (`Row`) is one of: `TrainRow`, every `log_interval` steps (the mean loss since the
last row, the gradient norm before clipping, the learning rate, the speed, and the
step's `Signals`: the share of steps clipped, each layer's gradient norm and update
ratio, the LSTM's gates and cell state); `EvalRow`, at each evaluation; `ReferenceRow`,
first (the training text's reference levels); `DiagnosisRow`, a finding of the
trainer's detectors; `ResumeRow`, the step a resumed run took up from; `NonfiniteRow`, a
loss that became NaN or infinite, as the detectors are told of it; `FindingRow`, a
finding of `charlm.watch`, in the watcher's own log. `time_s` is the training wall time
since the run began, resumed runs included (evaluation counts, drawing plots does not).
A row read from another loop's log (`diagnostics.log_rows`) keeps that log's other
columns in `columns`.

`row.to_json()` is the object written: the kind, then the fields in order, those that
are None left out (`file.MetricsLog` writes NaN and infinity as null). `parse_row(obj)`
is the one way back: the row, or None for one that is malformed (an unknown kind, a step
that is not a whole number, a loss or a learning rate that is not a number), so that no
reader checks a type again. A number written as null reads as NaN, one left out as None.
The signals are read leniently: a value among them that is not a number reads as NaN (a
report shows '?'), a mapping that is not one is left out.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeAlias

if TYPE_CHECKING:
    from charlm.diagnostics.findings import Finding
    from charlm.diagnostics.references import ReferenceLevels

__all__ = [
    "SIGNALS",
    "DiagnosisRow",
    "EvalRow",
    "FindingRow",
    "GateStats",
    "NonfiniteRow",
    "ReferenceRow",
    "ResumeRow",
    "Row",
    "Signals",
    "TrainRow",
    "json_safe",
    "parse_row",
]


class _Malformed(ValueError):
    """A value of the wrong type: the row is not read."""


# -- the signals of a probed step -----------------------------------------------------

SIGNALS = ("clipped", "grad_norms", "update_ratios", "gates", "cell")
"""The names a training row's signals are written under, in order."""


@dataclass(frozen=True)
class GateStats:
    """One gate of one layer, over the streams and steps probed (`diagnostics.signals`)."""

    mean: float
    """The mean activation."""
    saturated: float
    """The share of units whose pre-activation is beyond ±4."""


@dataclass(frozen=True, kw_only=True)
class Signals:
    """What a training row says of the run's health besides its loss (None: not logged)."""

    clipped: float | None = None
    """The share of the steps since the last row whose gradient was clipped."""
    grad_norms: Mapping[str, float] | None = None
    """The gradient norm of each parameter group (`embedding`, `lstm.l0`, ..., `head`)."""
    update_ratios: Mapping[str, float] | None = None
    """Each group's ||update|| / ||weights|| over the step."""
    gates: Mapping[str, Mapping[str, GateStats]] | None = None
    """Layer (`l0`, ...) -> gate (`input`, `forget`, `cell`, `output`) -> its figures."""
    cell: Mapping[str, float] | None = None
    """Layer -> the mean magnitude of its cell state."""

    def to_json(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in SIGNALS}
        if self.gates is not None:
            out["gates"] = {
                layer: {g: dataclasses.asdict(s) for g, s in per.items()}
                for layer, per in self.gates.items()
            }
        return {
            k: dict(v) if isinstance(v, Mapping) else v for k, v in out.items() if v is not None
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Signals:
        """The signals among a row's values, read leniently: a value that is not a number
        is NaN; a mapping that is not one (a layer's gates, say) is left out."""
        gates = obj.get("gates")
        return cls(
            clipped=_lenient(obj["clipped"]) if "clipped" in obj else None,
            grad_norms=_lenient_map(obj.get("grad_norms")),
            update_ratios=_lenient_map(obj.get("update_ratios")),
            gates=None
            if not isinstance(gates, dict)
            else {
                str(layer): {
                    str(g): GateStats(_lenient(s.get("mean")), _lenient(s.get("saturated")))
                    for g, s in per.items()
                    if isinstance(s, dict)
                }
                for layer, per in gates.items()
                if isinstance(per, dict)
            },
            cell=_lenient_map(obj.get("cell")),
        )


def _lenient(value: object) -> float:
    try:
        return _float(value)
    except _Malformed:
        return math.nan


def _lenient_map(values: object) -> dict[str, float] | None:
    if not isinstance(values, dict):
        return None
    return {str(k): _lenient(v) for k, v in values.items()}


# -- rows of numbers: train, eval, nonfinite, resume -----------------------------------


@dataclass(frozen=True, kw_only=True)
class _Numbers:
    """A row of a step and numbers by name: written in its fields' order, those that
    are None left out, with `signals` and `columns` (where the row has them) written
    flat after them."""

    kind: ClassVar[str]
    step: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "signals":
                out.update(value.to_json())
            elif f.name == "columns":
                out.update({k: v for k, v in value.items() if k not in out})
            elif value is not None:
                out[f.name] = value
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        """The row of a JSON object of this kind; `_Malformed` for a value of the wrong
        type, or a number the row needs that is left out."""
        values: dict[str, Any] = {"step": _whole(obj.get("step"))}
        for name, required in cls._numbers().items():
            values[name] = _number(obj, name)
            if values[name] is None and required:
                raise _Malformed(name)
        known = {"kind", *values}
        names = {f.name for f in dataclasses.fields(cls)}
        if "signals" in names:
            values["signals"] = Signals.from_json(obj)
            known.update(SIGNALS)
        if "columns" in names:
            values["columns"] = {k: v for k, v in obj.items() if k not in known}
        return cls(**values)

    @classmethod
    def named(cls, step: int, values: Mapping[str, float | None], **fields: Any) -> Self:
        """A row from values given by name (a loop's metrics): those named as one of the
        row's numbers are that number, the others are kept in `columns`; None is left
        out, and so are `kind` and `step`."""
        numbers = cls._numbers()
        given = {k: v for k, v in values.items() if v is not None and k not in ("kind", "step")}
        columns = {k: v for k, v in given.items() if k not in numbers}
        return cls(
            step=step,
            **{k: v for k, v in given.items() if k in numbers},
            **({"columns": columns} if columns else {}),
            **fields,
        )

    @classmethod
    def _numbers(cls) -> dict[str, bool]:
        """The row's numbers, each with whether the row needs it."""
        return {
            f.name: f.default is dataclasses.MISSING
            for f in dataclasses.fields(cls)
            if f.name not in ("step", "signals", "columns")
        }


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Malformed("step")
    return value


def _number(obj: Mapping[str, Any], name: str) -> float | None:
    """A number of a row: None when it is left out, NaN when it is null."""
    if name not in obj:
        return None
    return math.nan if obj[name] is None else _float(obj[name])


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed(repr(value))
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float
        raise _Malformed(repr(value)) from None


@dataclass(frozen=True, kw_only=True)
class TrainRow(_Numbers):
    """A logged training step ("train")."""

    kind: ClassVar[str] = "train"
    time_s: float | None = None
    loss: float | None = None
    """The mean training loss since the last row (None: a watched loop's step that gave
    none)."""
    grad_norm: float | None = None
    """The gradient norm before clipping."""
    lr: float | None = None
    chars_per_s: float | None = None
    accuracy: float | None = None
    signals: Signals = field(default_factory=Signals)
    columns: Mapping[str, Any] = field(default_factory=dict)
    """The other values of the line, by name (a user's log: `perplexity`, `note`)."""


@dataclass(frozen=True, kw_only=True)
class EvalRow(_Numbers):
    """An evaluation on the held-out text ("eval"): its loss, or a loop's accuracy."""

    kind: ClassVar[str] = "eval"
    time_s: float | None = None
    val_loss: float | None = None
    val_bits_per_char: float | None = None
    best_val_loss: float | None = None
    eval_s: float | None = None
    """The seconds the evaluation took."""
    val_accuracy: float | None = None
    columns: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NonfiniteRow(_Numbers):
    """A training loss that became NaN or infinite ("nonfinite"): the run stops there."""

    kind: ClassVar[str] = "nonfinite"
    loss: float
    lr: float | None = None


@dataclass(frozen=True, kw_only=True)
class ResumeRow(_Numbers):
    """A resumed run took up from its checkpoint at `step` ("resume")."""

    kind: ClassVar[str] = "resume"


# -- the other rows -------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceRow:
    """The training text's reference levels, written first ("reference")."""

    kind: ClassVar[str] = "reference"
    references: ReferenceLevels
    step: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, **self.references.to_dict()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ReferenceRow:
        # imported when read, not with this module: importing any module of
        # charlm.diagnostics runs the package, whose record reads this module
        from charlm.diagnostics.references import ReferenceLevels

        references = ReferenceLevels.from_dict(obj)
        if references is None:
            raise _Malformed("references")
        return cls(references, _whole(obj.get("step", 0)))


@dataclass(frozen=True)
class _OfFinding:
    """A row that is a finding, written as its fields."""

    kind: ClassVar[str]
    finding: Finding

    @property
    def step(self) -> int:
        return self.finding.step

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.finding.to_dict()}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Self:
        from charlm.diagnostics.findings import Finding  # here: see ReferenceRow.from_json

        finding = Finding.from_dict(dict(obj))
        if finding is None:
            raise _Malformed("finding")
        return cls(finding)


@dataclass(frozen=True)
class DiagnosisRow(_OfFinding):
    """A finding of the trainer's detectors ("diagnosis")."""

    kind: ClassVar[str] = "diagnosis"


@dataclass(frozen=True)
class FindingRow(_OfFinding):
    """A finding of `charlm.watch`, in the watcher's own log ("finding")."""

    kind: ClassVar[str] = "finding"


Row: TypeAlias = (
    TrainRow | EvalRow | NonfiniteRow | ResumeRow | ReferenceRow | DiagnosisRow | FindingRow
)
_KINDS: dict[str, type[Row]] = {
    cls.kind: cls
    for cls in (TrainRow, EvalRow, NonfiniteRow, ResumeRow, ReferenceRow, DiagnosisRow, FindingRow)
}


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinity, at any depth, as None (JSON's null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def parse_row(obj: object) -> Row | None:
    """The row a JSON object holds; None when it is not one (see the module docstring)."""
    if not isinstance(obj, dict):
        return None
    name = obj.get("kind")
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        return None
    try:
        return kind.from_json(obj)
    except _Malformed:
        return None
