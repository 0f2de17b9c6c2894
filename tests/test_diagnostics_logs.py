"""The logs people keep, read where they are (charlm/diagnostics/logs.py): Keras's and
Lightning's CSV loggers, TSV, header-less columns, printed loss lines, counters that
restart each epoch, charlm.watch's JSON Lines; what each format's errors name."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from charlm.cli import main as cli
from charlm.diagnostics.diagnosis import diagnose_log
from charlm.diagnostics.logs import open_log, read_log
from charlm.runlog import EvalRow, NonfiniteRow, TrainRow


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def trains(path: Path) -> list[tuple[int, float | None]]:
    return [(r.step, r.loss) for r in read_log(path) if isinstance(r, TrainRow)]


def test_a_keras_history_reads_one_step_an_epoch(tmp_path: Path) -> None:
    log = write(
        tmp_path / "history.csv",
        "epoch,accuracy,loss,val_accuracy,val_loss\n"
        "0,0.625,0.6685,0.0,0.8688\n1,0.625,0.6647,0.0,0.9031\n2,0.625,0.6631,0.0,0.9281\n",
    )
    rows = read_log(log)
    assert rows[0] == TrainRow(step=0, loss=0.6685, accuracy=0.625)
    assert rows[1] == EvalRow(step=0, val_loss=0.8688, val_accuracy=0.0)
    with open_log(log) as opened:
        list(opened.rows())
    assert opened.read.steps_from == "epoch" and opened.read.format == "CSV"
    diagnosis = diagnose_log(log)
    assert diagnosis.loss == "classes" and diagnosis.epochs == 3
    assert "Diagnosis of" in diagnosis.render() and "(3 epochs)" in diagnosis.render()


def test_a_lightning_metrics_csv_with_sparse_rows(tmp_path: Path) -> None:
    """Lightning's CSVLogger: every row holds only what was logged at its step (a
    training loss, a validation pass, a learning rate); its epoch-mean column is kept,
    not read as a second training loss."""
    log = write(
        tmp_path / "metrics.csv",
        "epoch,lr-Adam,step,train_loss_epoch,train_loss_step,val_acc,val_loss\n"
        ",0.001,0,,,,\n"
        "0,,49,,2.31,,\n"
        "0,,99,,2.10,,\n"
        "0,,99,,,0.41,2.05\n"
        "0,,99,2.2,,,\n"
        "1,,149,,1.95,,\n",
    )
    rows = read_log(log)
    assert [(r.kind, r.step) for r in rows] == [
        ("train", 49), ("train", 99), ("eval", 99), ("train", 149)
    ]  # fmt: skip
    assert rows[2] == EvalRow(step=99, val_loss=2.05, val_accuracy=0.41)
    with open_log(log) as opened:
        list(opened.rows())
    read = opened.read
    assert read.read_as["train_loss_step"] == "loss" and read.read_as["val_acc"] == "val_accuracy"
    assert read.read_as["lr-Adam"] == "lr" and "train_loss_epoch" in read.kept


def test_an_iteration_counter_that_restarts_each_epoch_is_joined(tmp_path: Path) -> None:
    log = write(
        tmp_path / "log.csv",
        "epoch,iter,train_loss\n1,1,2.0\n1,2,1.9\n1,3,1.8\n2,1,1.7\n2,2,1.6\n2,3,1.5\n3,1,1.4\n",
    )
    assert [s for s, _ in trains(log)] == [1, 2, 3, 4, 5, 6, 7]
    zero_based = write(tmp_path / "zero.csv", "epoch,batch,loss\n0,0,2\n0,1,2\n1,0,1\n1,1,1\n")
    assert [s for s, _ in trains(zero_based)] == [0, 1, 2, 3]
    # a counter that goes on across epochs is taken as it is
    going_on = write(tmp_path / "on.csv", "epoch,iteration,loss\n1,1,2\n1,2,2\n2,3,1\n2,4,1\n")
    assert [s for s, _ in trains(going_on)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("log.tsv", "step\tloss\tval_loss\n10\t2.5\t\n20\t2.4\t2.6\n"),
        ("log.txt", "step loss\n10 2.5\n20 2.4\n"),
        ("log.csv", "Step;Training Loss\n10;2.5\n20;2.4\n"),
        ("two.csv", "10,2.5\n20,2.4\n"),
        ("two.txt", "10 2.5\n\n20\t2.4\n"),
        ("printed.txt", "step 10 loss 2.5\nstep 20 loss 2.4\n"),
        ("colons.txt", "starting\nstep: 10, loss: 2.5\nstep: 20, loss: 2.4\ndone\n"),
        ("tutorial.txt",
         "Epoch [1/2], Step [10/20], Loss: 2.5\nEpoch [1/2], Step [20/20], Loss: 2.4\n"),
        ("lightning.json",
         '{"trainer/global_step": 10, "train/loss": 2.5}\n'
         '{"trainer/global_step": 20, "train/loss": 2.4}\n'),
    ],
)  # fmt: skip
def test_the_formats_people_keep(tmp_path: Path, name: str, text: str) -> None:
    assert trains(write(tmp_path / name, text)) == [(10, 2.5), (20, 2.4)]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["tensor(0.5000, dtype=torch.float64, grad_fn=<AddBackward0>)", "tensor(0.25)"],
         [(1, 0.5), (2, 0.25)]),
        (["Epoch 1 Iteration 5 Error = 0.123", "Epoch 1 testing results: pos=0.5"],
         [(5, 0.123)]),
        (["loss: 0.9", "loss: 0.8", "loss: nan"], [(1, 0.9), (2, 0.8), (3, math.nan)]),
        (["0.9", "0.8"], [(1, 0.9), (2, 0.8)]),
        (["Epoch 1/5 - accuracy: 0.6250 - loss: 0.6685 - val_accuracy: 0.0000"],
         [(1, 0.6685)]),
        (["2024-05-01 12:00:00 INFO train loss: 0.7 val loss: 0.9 lr 1e-3"], [(1, 0.7)]),
    ],
)  # fmt: skip
def test_printed_loss_lines(tmp_path: Path, lines: list[str], expected: list[tuple]) -> None:
    """One extraction for all: named numbers, a number alone, a printed tensor."""
    rows = [r for r in read_log(write(tmp_path / "out.txt", "\n".join(lines) + "\n"))]
    got = [(r.step, r.loss) for r in rows if isinstance(r, TrainRow | NonfiniteRow)]
    assert [s for s, _ in got] == [s for s, _ in expected]
    for (_, a), (_, b) in zip(got, expected, strict=True):
        assert a == b or (math.isnan(a) and math.isnan(b))


def test_printed_lines_keep_what_they_name(tmp_path: Path) -> None:
    log = write(
        tmp_path / "out.txt",
        "model has 1234 parameters\n"
        "2024-05-01 12:00:00 INFO step 10 train loss: 0.7 val loss: 0.9 acc 0.5 lr 1e-3 "
        "grad norm 2\n",
    )
    rows = read_log(log)
    assert rows[0] == TrainRow(step=10, loss=0.7, accuracy=0.5, lr=1e-3, grad_norm=2.0)
    assert rows[1] == EvalRow(step=10, val_loss=0.9)
    with open_log(log) as opened:
        list(opened.rows())
    assert (opened.read.skipped, opened.read.first_skipped) == (1, 1)


def test_columns_beyond_the_known_ones_are_kept(tmp_path: Path) -> None:
    log = write(tmp_path / "log.csv", "step,loss,perplexity,note\n10,2.5,12.2,warm\n")
    (row,) = read_log(log)
    assert row == TrainRow(step=10, loss=2.5, columns={"perplexity": 12.2, "note": "warm"})
    text = diagnose_log(log).render()
    assert "kept as they are: perplexity, note" in text


def test_a_watcher_log_brings_its_findings(tmp_path: Path) -> None:
    """charlm.watch's log: its finding rows are reported as it made them, marked as its
    own, the later row of a finding (passed) replacing the earlier."""
    finding = {
        "kind": "finding", "name": "gradients_accumulate", "step": 3, "seen": "s",
        "causes": "c", "advice": "a",
    }  # fmt: skip
    rows = [{"kind": "train", "step": s, "loss": 2.0 - s / 100} for s in range(1, 11)]
    rows += [finding, {**finding, "name": "no_gradient"}, {**finding, "passed": "at step 9 ..."}]
    log = write(tmp_path / "watch.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    diagnosis = diagnose_log(log)
    assert [(f.name, f.passed) for f in diagnosis.watcher] == [
        ("gradients_accumulate", "at step 9 ..."), ("no_gradient", None)
    ]  # fmt: skip
    assert not diagnosis.healthy  # no_gradient holds
    text = diagnosis.render()
    assert "Found by charlm.watch inside the loop (2)" in text
    assert diagnosis.to_dict()["watcher_findings"][1]["name"] == "no_gradient"


def test_a_charlm_metrics_log_is_known_as_charlms(alphabet_dir: Path) -> None:
    diagnosis = diagnose_log(alphabet_dir / "metrics.jsonl")
    assert diagnosis.loss == "charlm" and diagnosis.references is not None
    assert diagnosis.references.determined_after == 1 and diagnosis.findings == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("log.csv", "epoch,accuracy\n1,0.5\n", "line 1: no 'loss' column"),
        ("log.tsv", "step\tloss\n1\t2\n2\tx\n", "line 3: loss is 'x', not a number"),
        ("log.csv", "epoch,loss\n1,2\n1.5,2\n", "line 3: epoch is '1.5', not a whole number"),
        ("log.csv", "step,loss\n\n10,2.5,1\n", "line 3: 3 values for 2 columns"),
        ("out.txt", "hello\n1 2 3\n", "no line has a training loss; line 1 has none"),
        ("events.out.tfevents.1700000000.host", "x", "a TensorBoard event file"),
        ("out.txt", "step 1 loss 0.5\n" + "x" * 10 + "\xff\n", "cannot read it as UTF-8"),
        ("w.jsonl", '{"kind": "finding", "name": "x"}\n', "line 1: a finding row needs"),
    ],
)
def test_bad_logs_are_refused_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    if "\xff" in content:
        path.write_bytes(content.encode("utf-8").replace("\xff".encode(), b"\xff"))
    else:
        write(path, content)
    assert cli(["diagnose", "--log", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err
