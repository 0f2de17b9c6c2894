"""The training log's rows (charlm/runlog/): each kind written and read back as itself,
the committed logs rewritten byte for byte, malformed rows refused at the boundary, the
resume rule, and no reader outside the boundary reading a row by its keys."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from charlm.diagnostics import Finding, ReferenceLevels
from charlm.runlog import (
    METRICS_FILE,
    DiagnosisRow,
    EvalRow,
    FindingRow,
    GateStats,
    MetricsLog,
    NonfiniteRow,
    ReferenceRow,
    ResumeRow,
    Row,
    Signals,
    TrainRow,
    parse_row,
    read_metrics,
)

from .conftest import REPO

FINDING = Finding("overfitting", 300, "seen", "causes", "advice")
ROWS: list[Row] = [
    ReferenceRow(ReferenceLevels(3.2, 3.4, 1)),
    TrainRow(step=10, time_s=0.09, loss=3.15, grad_norm=0.2, lr=0.025, chars_per_s=28374.9),
    TrainRow(
        step=20,
        time_s=0.12,
        loss=1.9,
        grad_norm=0.19,
        lr=0.05,
        chars_per_s=41995.8,
        signals=Signals(
            clipped=0.1,
            grad_norms={"embedding": 0.01, "lstm.l0": 0.2, "head": 0.05},
            update_ratios={"embedding": 1e-3, "lstm.l0": 2e-3, "head": 4e-3},
            gates={"l0": {"input": GateStats(0.5, 0.01), "forget": GateStats(0.7, 0.02)}},
            cell={"l0": 0.31},
        ),
    ),
    EvalRow(step=20, time_s=0.13, val_loss=1.4, val_bits_per_char=2.02, best_val_loss=1.4),
    DiagnosisRow(FINDING),
    DiagnosisRow(Finding("overfitting", 300, "seen", "causes", "advice", "at step 400 ...")),
    ResumeRow(step=20),
    NonfiniteRow(step=21, loss=math.inf, lr=0.05),
    FindingRow(FINDING),
    TrainRow(step=5, loss=0.5, accuracy=0.75, columns={"perplexity": 1.6, "note": "warm"}),
    EvalRow(step=5, val_accuracy=0.5, columns={"val_f1": 0.4}),
]


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r.kind}-{r.step}")
def test_each_kind_is_written_and_read_back_as_itself(row: Row, tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    log.write(row)
    log.close()
    (line,) = lines(tmp_path / METRICS_FILE)
    obj = json.loads(line)
    assert obj["kind"] == row.kind and obj["step"] == row.step
    back = parse_row(obj)
    if isinstance(row, NonfiniteRow):  # infinity is written as null and read as NaN
        assert obj["loss"] is None
        assert isinstance(back, NonfiniteRow) and math.isnan(back.loss) and back.lr == row.lr
    else:
        assert back == row


def fixture_logs() -> list[Path]:
    return sorted((REPO / "tests" / "fixtures").rglob(METRICS_FILE))


@pytest.mark.parametrize("path", fixture_logs(), ids=lambda p: p.parent.name)
def test_the_committed_logs_read_and_rewrite_byte_for_byte(path: Path, tmp_path: Path) -> None:
    assert_rewrites(path, tmp_path)


def test_a_fresh_runs_log_rewrites_byte_for_byte(alphabet_dir: Path, tmp_path: Path) -> None:
    """Today's rows, the signals and reference levels included."""
    kinds = assert_rewrites(alphabet_dir / METRICS_FILE, tmp_path)
    assert {"reference", "train", "eval"} <= kinds


def assert_rewrites(path: Path, tmp_path: Path) -> set[str]:
    rows = read_metrics(path)
    assert len(rows) == len(lines(path))  # every row read, none superseded
    log = MetricsLog(tmp_path)
    for row in rows:
        log.write(row)
    log.close()
    assert (tmp_path / METRICS_FILE).read_bytes() == path.read_bytes()
    return {r.kind for r in rows}


def test_a_number_written_as_null_reads_as_nan_and_one_left_out_as_none() -> None:
    row = parse_row({"kind": "train", "step": 3, "loss": None, "grad_norm": None, "lr": 0.1})
    assert isinstance(row, TrainRow) and row.loss is not None and row.grad_norm is not None
    assert math.isnan(row.loss) and math.isnan(row.grad_norm) and row.lr == 0.1
    assert row.time_s is None and row.signals == Signals() and row.columns == {}
    assert parse_row({"kind": "train", "step": 3, "loss": 2}) == TrainRow(step=3, loss=2.0)


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "train", "step": True, "loss": 1.0},
        {"kind": "train", "step": 2.0, "loss": 1.0},
        {"kind": "train", "step": "2", "loss": 1.0},
        {"kind": "train", "loss": 1.0},
        {"kind": "train", "step": 2, "loss": "1.0"},
        {"kind": "train", "step": 2, "loss": False},
        {"kind": "train", "step": 2, "loss": 10**400},
        {"kind": "train", "step": 2, "loss": 1.0, "lr": "fast"},
        {"kind": "eval", "step": 2, "val_loss": [1.0]},
        {"kind": "nonfinite", "step": 2},
        {"kind": "resume", "step": None},
        {"kind": "reference", "step": 0, "repeat": 1.0},
        {"kind": "diagnosis", "name": "x", "step": 1},
        {"kind": "what", "step": 1},
        {"kind": ["train"], "step": 1},
        {"step": 1, "loss": 1.0},
        [1, 2],
        "train",
    ],
)  # fmt: skip
def test_a_malformed_row_is_refused_at_the_boundary(obj: object, tmp_path: Path) -> None:
    assert parse_row(obj) is None
    (tmp_path / METRICS_FILE).write_text(json.dumps(obj) + "\n", encoding="utf-8")
    assert read_metrics(tmp_path / METRICS_FILE) == []


def test_the_signals_are_read_leniently() -> None:
    """A hand-edited or foreign log: a signal that is not a number reads as NaN, a
    mapping that is not one is left out; the row itself is read."""
    row = parse_row({
        "kind": "train", "step": 1, "loss": 1.0, "clipped": "many",
        "grad_norms": {"lstm.l0": "big", "lstm.l1": None, "head": 2}, "update_ratios": 3,
        "gates": {"l0": {"input": {"mean": "x"}, "forget": 7}, "l1": 3}, "cell": {"l0": {}},
    })  # fmt: skip
    assert isinstance(row, TrainRow)
    s = row.signals
    assert s.clipped is not None and math.isnan(s.clipped) and s.update_ratios is None
    assert s.grad_norms is not None and s.grad_norms["head"] == 2.0
    assert math.isnan(s.grad_norms["lstm.l0"]) and math.isnan(s.grad_norms["lstm.l1"])
    assert s.gates is not None and list(s.gates) == ["l0"] and list(s.gates["l0"]) == ["input"]
    assert math.isnan(s.gates["l0"]["input"].mean) and math.isnan(s.gates["l0"]["input"].saturated)
    assert s.cell is not None and math.isnan(s.cell["l0"])


def test_rows_from_named_values_keep_the_others_as_columns() -> None:
    row = EvalRow.named(7, {"val_loss": 0.5, "val_accuracy": None, "val_f1": 0.3, "step": 9})
    assert row == EvalRow(step=7, val_loss=0.5, columns={"val_f1": 0.3})
    row = TrainRow.named(3, {"loss": None, "accuracy": 0.9}, signals=Signals(clipped=0.0))
    assert row == TrainRow(step=3, accuracy=0.9, signals=Signals(clipped=0.0))
    assert row.to_json() == {"kind": "train", "step": 3, "accuracy": 0.9, "clipped": 0.0}


def test_the_rows_a_resume_superseded_are_dropped(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path)
    for step in (10, 20, 30, 40):
        log.write(TrainRow(step=step, loss=1.0))
    log.write(EvalRow(step=40, val_loss=1.0))
    log.close()
    with open(tmp_path / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write('{"kind": "train", "step": 50, "lo')  # torn by a crash
    log = MetricsLog(tmp_path, resumed_at=20)  # the checkpoint was at step 20
    log.write(TrainRow(step=30, loss=0.5))
    log.close()
    rows = read_metrics(tmp_path / METRICS_FILE)
    assert rows == [
        TrainRow(step=10, loss=1.0),
        TrainRow(step=20, loss=1.0),
        TrainRow(step=30, loss=0.5),
    ]
    assert lines(tmp_path / METRICS_FILE)[-2:] == [
        '{"kind": "resume", "step": 20}',
        '{"kind": "train", "step": 30, "loss": 0.5}',
    ]


ROW_KEYS = re.compile(
    r"""(\[|\.get\()["'](kind|val_loss|val_accuracy|grad_norm|grad_norms|update_ratios|"""
    r"""clipped|gates|time_s|eval_s|chars_per_s)["']|\.write\(kind="""
)
BOUNDARY = ("charlm/runlog/", "charlm/diagnostics/log_rows.py", "charlm/diagnostics/logs.py")
"""The rows' own package, and the reader of other loops' logs, which turns a line's
values into rows."""


def test_only_the_boundary_reads_a_row_by_its_keys() -> None:
    found = []
    for path in sorted([*(REPO / "charlm").rglob("*.py"), *(REPO / "service").rglob("*.py")]):
        name = path.relative_to(REPO).as_posix()
        if name.startswith(BOUNDARY):
            continue
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ROW_KEYS.search(text):
                found.append(f"{name}:{number}: {text.strip()}")
    assert not found, "rows read by key outside charlm.runlog:\n" + "\n".join(found)
