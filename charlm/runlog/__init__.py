"""A run's training log, `metrics.jsonl`: its rows as typed records (`rows`: one frozen
dataclass per kind of row, written as JSON and parsed back at the boundary) and the
append-only file (`file`: `MetricsLog` writes it, `read_metrics` reads it back)."""

from charlm.runlog.file import METRICS_FILE, MetricsLog, NullLog, read_metrics
from charlm.runlog.rows import (
    SIGNALS,
    DiagnosisRow,
    EvalRow,
    FindingRow,
    GateStats,
    NonfiniteRow,
    ReferenceRow,
    ResumeRow,
    Row,
    Signals,
    TrainRow,
    json_safe,
    parse_row,
)

__all__ = [
    "METRICS_FILE",
    "SIGNALS",
    "DiagnosisRow",
    "EvalRow",
    "FindingRow",
    "GateStats",
    "MetricsLog",
    "NonfiniteRow",
    "NullLog",
    "ReferenceRow",
    "ResumeRow",
    "Row",
    "Signals",
    "TrainRow",
    "json_safe",
    "parse_row",
    "read_metrics",
]
