"""Data-parallel training: real torchrun processes on loopback (gloo), real checkpoints.

Two ranks with a per-rank batch of B/2 follow one process with batch B: DDP averages
the two halves' gradients, which is the gradient of the whole batch's mean loss, so the
runs differ only in the order of floating-point sums.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from charlm import checkpoint
from charlm.cli import main
from charlm.inference import Predictor
from charlm.training.launch import without_nproc
from tests.conftest import CORPORA, copy_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

# dropout off (masks cannot match across a different split of the batch); one thread per
# one process, so that both sides sum in the same way within a process; a constant rate
# after warm-up, so that a run stopped early and resumed follows the same schedule
SETTINGS = ["--batch-size", "8", "--seq-len", "32", "--hidden-size", "32", "--dropout", "0",
            "--eval-interval", "20", "--min-lr-ratio", "1", "--threads", "1",
            "--quiet"]  # fmt: skip
TOLERANCE = 1e-4
"""Relative difference allowed between the two runs' losses at every logged step."""


def _train(
    ck: Path, *args: str, nproc: int = 1, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "charlm", "train", str(CORPORA / "notes.txt"),
            "--checkpoints-dir", str(ck), *SETTINGS, *args]  # fmt: skip
    if nproc > 1:
        argv += ["--nproc", str(nproc)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _losses(directory: Path) -> list[tuple[str, int, float]]:
    rows = [json.loads(line) for line in (directory / "metrics.jsonl").open()]
    return [
        (r["kind"], r["step"], r.get("loss", r.get("val_loss")))
        for r in rows
        if r["kind"] in ("train", "eval")
    ]


def _close(
    a: list[tuple[str, int, float]], b: list[tuple[str, int, float]], kinds: str = "train eval"
) -> None:
    """Every logged loss of run `a` of the `kinds` is in run `b` (which may have more: a
    resumed run evaluates where it stopped) and within TOLERANCE of it."""
    found = {(kind, step): loss for kind, step, loss in b}
    rows = [r for r in a if r[0] in kinds.split()]
    assert len(rows) >= 3
    for kind, step, x in rows:
        y = found[(kind, step)]
        assert abs(x - y) <= TOLERANCE * abs(x), (kind, step, x, y)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ck = tmp_path_factory.mktemp("one")
    done = _train(ck, "--max-steps", "60")
    assert done.returncode == 0, done.stderr
    return ck / "notes"


def test_two_ranks_follow_one_process_and_serve_the_same(one_process: Path, tmp_path: Path) -> None:
    done = _train(tmp_path, "--max-steps", "60", nproc=2)
    assert done.returncode == 0, done.stderr
    two = tmp_path / "notes"
    _close(_losses(one_process), _losses(two))
    assert "trained 60 steps" in done.stdout and done.stdout.count("trained") == 1  # rank 0
    summary = checkpoint.load(two).summary
    assert summary["processes"] == 2 and summary["step"] == 60
    a, b = Predictor.from_checkpoint(one_process), Predictor.from_checkpoint(two)
    pa, pb = (p.predict("the cat ", top_k=0, continuation_length=40) for p in (a, b))
    assert [c.char for c in pa.next] == [c.char for c in pb.next]
    assert max(abs(x.prob - y.prob) for x, y in zip(pa.next, pb.next, strict=True)) < 1e-4
    assert pa.continuation == pb.continuation


@pytest.fixture(scope="module")
def two_ranks_stopped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 ranks stopped after 30 of the 60 steps: the checkpoint both resume tests start
    from (each resumes a copy)."""
    ck = tmp_path_factory.mktemp("two-stopped")
    done = _train(ck, "--max-steps", "30", nproc=2)
    assert done.returncode == 0, done.stderr
    return ck / "notes"


def test_a_two_rank_run_resumes_as_one_run(
    one_process: Path, two_ranks_stopped: Path, tmp_path: Path
) -> None:
    """2 ranks for 30 steps, resumed by 2 ranks to 60: the same trajectory as one
    process's 60 steps (the checkpoint holds every stream's carried state)."""
    copy_checkpoint(two_ranks_stopped, tmp_path / "notes")
    again = _train(tmp_path, "--max-steps", "60", "--resume", nproc=2)
    assert again.returncode == 0, again.stderr
    # evaluations only: a resumed run's first training row averages the steps since
    # the resume, not since the last row
    _close(_losses(one_process), _losses(tmp_path / "notes"), "eval")


def test_one_process_resumes_a_two_rank_checkpoint(
    one_process: Path, two_ranks_stopped: Path, tmp_path: Path
) -> None:
    copy_checkpoint(two_ranks_stopped, tmp_path / "notes")
    again = _train(tmp_path, "--max-steps", "60", "--resume")
    assert again.returncode == 0, again.stderr
    _close(_losses(one_process), _losses(tmp_path / "notes"), "eval")


def test_ranks_agree_on_the_end_of_a_time_budget(tmp_path: Path) -> None:
    """Each rank has its own clock: rank 0's reading ends them all on one step (a rank
    that stopped alone would leave the other waiting in a collective)."""
    done = _train(tmp_path, "--max-minutes", "0.05", "--patience", "0", nproc=2)
    assert done.returncode == 0, done.stderr
    summary = checkpoint.load(tmp_path / "notes").summary
    assert summary["stop_reason"] == "time budget" and summary["step"] > 0


def _ranks(parent: int) -> dict[int, int]:
    """RANK -> pid of the training processes below `parent`."""
    out: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        ppid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid"))
        rank = [e for e in env if e.startswith(b"RANK=")]
        if rank and ppid == parent:
            out[int(rank[0][5:])] = int(entry.name)
    return out


def _running(ck: Path, **popen: Any) -> subprocess.Popen[str]:
    """A 2-process run that trains until stopped, once its first checkpoint is written."""
    argv = [sys.executable, "-m", "charlm", "train", str(CORPORA / "notes.txt"),
            "--checkpoints-dir", str(ck), *SETTINGS, "--max-steps", "1000000",
            "--nproc", "2"]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )
    deadline = time.monotonic() + 120
    while not checkpoint.exists(ck / "notes"):  # training is under way
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run did not get going: {proc.communicate()}")
        time.sleep(0.2)
    return proc


def test_a_rank_that_dies_stops_the_run_with_a_clear_error(tmp_path: Path) -> None:
    proc = _running(tmp_path)
    try:
        ranks = _ranks(proc.pid)
        assert sorted(ranks) == [0, 1]
        os.kill(ranks[1], signal.SIGKILL)
        _, err = proc.communicate(timeout=60)  # bounded: no hang
    finally:
        proc.kill()
    assert proc.returncode == 2
    assert "charlm: error: rank 1" in err and "SIGKILL" in err and "intact" in err
    ckpt = checkpoint.load(tmp_path / "notes")  # the last one written loads
    assert ckpt.summary["step"] >= 20 and ckpt.summary["step"] % 20 == 0


def test_ctrl_c_stops_every_rank_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    proc = _running(tmp_path, start_new_session=True)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "stopped: interrupted" in out and "Traceback" not in err
    assert checkpoint.load(tmp_path / "notes").summary["step"] % 20 == 0


def test_bad_process_counts_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(CORPORA / "notes.txt"), "--nproc", "0"]) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err
    done = _train(tmp_path, "--batch-size", "7", "--max-steps", "5", nproc=2)
    assert done.returncode == 2
    assert "batch size 7 does not divide among 2 processes" in done.stderr
    assert not checkpoint.exists(tmp_path / "notes")


# Two ranks of a Cluster, as torchrun starts them: wrap a model (DDP, with its reference
# cycles), step, agree, gather; drop the model; close. Each prints how many threads it had
# before joining and after closing.
_RANK = """
import os, sys, torch
from charlm.model import CharRNN, ModelConfig
from charlm.training.distributed import Cluster

def threads():
    return len(os.listdir("/proc/self/task"))

before = threads()
cluster = Cluster.from_env(torch.device("cpu"))
model = CharRNN(ModelConfig(vocab_size=5, hidden_size=8, num_layers=1, dropout=0.0))
net = cluster.wrap(model)
net.cycle = [net]  # as a trainer holding it would
logits, state = net(torch.zeros(2, 3, dtype=torch.long))
logits.sum().backward()
cluster.step_agreement(1.0, 0.5)
cluster.gather_state(state)
cluster.agree("max steps")
del net, model, logits, state
cluster.close()
print(before, threads())
"""


def test_closing_a_cluster_ends_the_process_group_and_its_threads(tmp_path: Path) -> None:
    """The cause of a random SIGABRT at exit ("terminate called without an active
    exception"): gloo's threads outliving `close()` drop finished work while the
    interpreter shuts down. After `close()` each rank is back to its threads before."""
    script = tmp_path / "rank.py"
    script.write_text(_RANK)
    env = {**os.environ, "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}  # fmt: skip
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script)],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    for proc in ranks:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        before, after = map(int, out.split())
        assert after == before, f"{after - before} threads left after close()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_without_nproc() -> None:
    assert without_nproc(["a", "--nproc", "2", "b", "--nproc=3", "c"]) == ["a", "b", "c"]
