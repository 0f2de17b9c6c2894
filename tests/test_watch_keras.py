"""The watcher's Keras callback (`charlm.watcher.keras`) under Keras's torch backend, for
real: post 002's latching experiment as posted (tests/loops/post_002_latching_keras.py),
whose unshuffled `validation_split` the callback names; the same run shuffled and with
8 units, which learns, gets nothing (one unit, shuffled, does not learn in 5 epochs at
Adam's default rate, and the watcher says so); the labels split as Keras splits them; a
clear error without Keras or its torch backend.

Keras runs in subprocesses started with KERAS_BACKEND=torch: Keras fixes its backend
when it is first imported, so one pytest process that imported it on another backend
(or watched something else with torch's softmax patched) cannot change what these see.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from charlm.cli import main

pytestmark = pytest.mark.slow  # each test starts Python with torch and Keras

LATCHING = Path(__file__).parent / "loops" / "post_002_latching_keras.py"


def python(*args: str, backend: str = "torch") -> subprocess.CompletedProcess[str]:
    """`python ARGS` with Keras's backend set, on one thread (the runs are tiny)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=600
    )


def latching(*args: str) -> tuple[dict[str, list[str]], str]:
    """Run the latching experiment: (the callback's findings and passed, its stderr)."""
    sizes = ["--n", "2000", "--length", "20", "--epochs", "5", "--seed", "0"]
    done = python(str(LATCHING), *sizes, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def test_the_unshuffled_split_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history, log = tmp_path / "history.csv", tmp_path / "watch.jsonl"
    found, err = latching("--history", str(history), "--watch-log", str(log))
    assert found["findings"][:2] == ["split_mismatch", "below_chance"], err[-3000:]
    assert "charlm: split_mismatch at step 0: the validation targets are all class 0 " in err
    assert "(400 of 400), while training has class 1 62.5%, class 0 37.5%" in err
    # the report, at the end of training: one step a batch (1,600 / 16 = 100 an epoch),
    # and Keras's torch trainer clears the gradients before each backward pass
    assert "Diagnosis of the latching model (500 steps, watched)" in err
    assert "gradients cleared yes: none of the 5 parameters held earlier gradients" in err
    assert "softmax input     post_002_latching_keras.py:" in err  # the `fit` line

    # Keras's own history (kept in tmp_path for the log reader's tests)
    with history.open() as f:
        epochs = list(csv.DictReader(f))
    assert [row["epoch"] for row in epochs] == ["0", "1", "2", "3", "4"]
    assert all(float(row["val_accuracy"]) == 0.0 for row in epochs)
    # which `charlm diagnose --log` reads, naming the same cause from the curves alone
    assert main(["diagnose", "--log", str(history)]) == 0
    assert "step 0: split_mismatch" in capsys.readouterr().out

    # each step's loss is its batch's own: an epoch's steps average to the epoch's loss
    # Keras reports (a running mean given as the step's loss would not); the epoch's
    # metrics come with its last step
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    steps = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, 501))
    for e, row in enumerate(epochs):
        batch = steps[100 * e : 100 * (e + 1)]
        assert sum(r["loss"] for r in batch) / 100 == pytest.approx(float(row["loss"]), abs=1e-4)
        assert [r["step"] for r in batch if "val_loss" in r] == [100 * (e + 1)]
        last = batch[-1]
        for name in ("accuracy", "val_loss", "val_accuracy"):
            assert last[name] == pytest.approx(float(row[name]), rel=1e-6)


def test_the_shuffled_run_that_learns_gets_nothing() -> None:
    found, err = latching("--fixed", "--units", "8")
    assert found == {"findings": [], "passed": []}, err[-3000:]
    assert "Findings: none; the run looks healthy." in err
    assert "charlm: " not in err  # nothing fired on the way


SPLITS = """
import json
import numpy as np
from keras.src.trainers.data_adapters.array_slicing import train_validation_split
from charlm.errors import ConfigError
from charlm.watcher.keras import WatchCallback

ours, keras, errors = [], [], []
rng = np.random.default_rng(0)
for n, share in [(2000, 0.2), (2001, 0.2), (10, 0.7), (7, 0.3), (999, 0.15), (30, 0.1)]:
    y = rng.integers(0, 3, n).astype(float)
    w = WatchCallback(y=y, validation_split=share)
    ours.append([w.train_labels.tolist(), w.val_labels.tolist()])
    train, val = train_validation_split((y,), validation_split=share)
    keras.append([train[0].astype(int).tolist(), val[0].astype(int).tolist()])
one_hot = np.eye(3)[[0, 2, 1, 2]]
w = WatchCallback(y=one_hot, validation_data=(np.zeros((2, 5)), np.eye(3)[[1, 1]]))
given = WatchCallback(train_labels=[0, 1, 1], val_labels=np.array([[1], [0]]))
for kwargs in [dict(validation_split=0.2), dict(y=[0, 1], train_labels=[0, 1]),
               dict(y=[0, 1], validation_split=1.0), dict(y=[1], validation_split=0.2)]:
    try:
        WatchCallback(**kwargs)
    except ConfigError as e:
        errors.append(str(e))
print(json.dumps({
    "ours": ours, "keras": keras, "errors": errors,
    "one_hot": [w.train_labels.tolist(), w.val_labels.tolist()],
    "given": [given.train_labels.tolist(), given.val_labels.tolist()],
}))
"""


def test_the_labels_are_split_as_keras_splits_them() -> None:
    done = python("-c", SPLITS)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["ours"] == out["keras"]  # Keras's own function, on awkward sizes
    assert out["one_hot"] == [[0, 2, 1, 2], [1, 1]]
    assert out["given"] == [[0, 1, 1], [1, 0]]
    assert len(out["errors"]) == 4
    assert "give `y` too" in out["errors"][0]
    assert "not both" in out["errors"][1]
    assert "it must be at least 0 and below 1" in out["errors"][2]
    assert "leaves one of the two sets empty" in out["errors"][3]


def test_another_backend_is_refused_with_what_to_set() -> None:
    done = python("-c", "import charlm.watcher.keras", backend="numpy")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("charlm.errors.ConfigError: charlm's Keras callback needs Keras's ")
    assert "the backend is numpy" in last and "KERAS_BACKEND=torch" in last


def test_without_keras_the_import_says_what_to_install() -> None:
    blocked = "import sys; sys.modules['keras'] = None; import charlm.watcher.keras"
    done = python("-c", blocked)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("charlm.errors.ConfigError: ")
    assert "Keras is not installed: `pip install 'charlm[keras]'`" in last


def test_charlm_never_imports_keras() -> None:
    probe = (
        "import sys, charlm, charlm.watcher, charlm.cli, charlm.diagnostics; "
        "print('keras' in sys.modules)"
    )
    done = python("-c", probe)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["False"]
