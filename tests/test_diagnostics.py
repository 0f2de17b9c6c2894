"""Training diagnostics: each detector fires on a real run set up to show its failure and
stays quiet on a healthy run of the same size; the signals are checked against the math
they stand for; `charlm diagnose` reads charlm's runs and other loops' logs."""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from charlm import checkpoint
from charlm.cli import main as cli
from charlm.diagnostics import Finding, History, ReferenceLevels, RunFacts
from charlm.diagnostics.diagnosis import diagnose_checkpoint, diagnose_log, diagnose_rows
from charlm.diagnostics.logs import open_log, read_log
from charlm.diagnostics.references import bounded_softmax_floor
from charlm.diagnostics.signals import gate_signals, gradient_norms, snapshot, update_ratios
from charlm.errors import TrainingError
from charlm.inference import Predictor
from charlm.lab.broken import SoftmaxOnOutput
from charlm.lab.loop import LoopConfig, cross_entropy, random_windows
from charlm.lab.loop import train as lab_train
from charlm.model import CharRNN, ModelConfig
from charlm.runlog import DiagnosisRow, EvalRow, TrainRow, parse_row, read_metrics
from charlm.training import TrainConfig, Trainer
from charlm.vocab import Vocabulary

from .conftest import CORPORA, text_split

ALPHABET = (CORPORA / "alphabet.txt").read_text(encoding="utf-8")
NOTES = (CORPORA / "notes.txt").read_text(encoding="utf-8")
# the tiny preset's shape, which `charlm train` gives both corpora
TINY_MODEL = {"embedding_dim": 16, "hidden_size": 64, "num_layers": 1}
TINY_TRAIN = {"batch_size": 32, "seq_len": 8, "lr": 5e-2, "warmup_steps": 20, "reset_prob": 0.5}


def train(
    tmp: Path,
    text: str,
    *,
    model: dict[str, Any] | None = None,
    steps: int = 400,
    split: str = "interleaved",
    **settings: Any,
) -> tuple[list[str], Path]:
    """Train for real; the names of the findings, in order, and the run's directory."""
    vocab = Vocabulary.from_text(text)
    mcfg = ModelConfig(vocab_size=len(vocab), **{**TINY_MODEL, **(model or {})})
    tcfg = TrainConfig(
        **{**TINY_TRAIN, "max_steps": steps, "eval_interval": 100, "split": split, **settings}
    )
    directory = tmp / "run"
    t = Trainer(mcfg, tcfg, vocab, text_split(text, vocab, tcfg.val_fraction, split), directory)
    t.run()
    return [f.name for f in t.history.findings], directory


def written(directory: Path) -> list[str]:
    """The findings as metrics.jsonl and the checkpoint's summary have them (the same)."""
    rows = [
        r.finding.name
        for r in read_metrics(directory / "metrics.jsonl")
        if isinstance(r, DiagnosisRow)
    ]
    saved = [f["name"] for f in checkpoint.load(directory).summary["diagnoses"]]
    assert rows == saved
    return rows


# -- healthy runs: no warning ---------------------------------------------------------


@pytest.mark.slow
def test_healthy_default_runs_raise_no_warning(
    alphabet_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`charlm train corpora/alphabet.txt` and `charlm train corpora/notes.txt`."""
    assert written(alphabet_dir) == []
    with caplog.at_level(logging.WARNING):
        args = ["train", str(CORPORA / "notes.txt"), "--checkpoints-dir", str(tmp_path)]
        assert cli([*args, "--quiet"]) == 0
    assert written(tmp_path / "notes") == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # the tiny preset's patience stops it 3 evaluations after its best step
    summary = checkpoint.load(tmp_path / "notes").summary
    assert summary["stop_reason"] == "no improvement"
    assert summary["step"] == summary["best_step"] + 300


# -- one broken run per detector ------------------------------------------------------


def broken_loop(
    text: str,
    model: nn.Module,
    steps: int,
    *,
    targets: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    **loop: Any,
) -> tuple[list[str], list[Finding]]:
    """Train `model` on `text` in a loop written as its author would (the lab's, under
    the watcher), with the targets `targets` makes of each window's inputs and true
    targets, and read its log with the text's reference levels, as `charlm diagnose
    --corpus` does: the watcher's findings' names, and the log's findings."""
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    cut = int(len(ids) * 0.9)
    draw = random_windows(ids[:cut], 32, 8)

    def batches(rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = draw(rng)
        return x, (y if targets is None else targets(x, y))

    val_x, val_y = random_windows(ids[cut:], 64, 8)(torch.Generator().manual_seed(1))

    def evaluate(m: nn.Module) -> dict[str, float]:
        out = m(val_x)
        return {"val_loss": float(cross_entropy(out[0] if isinstance(out, tuple) else out, val_y))}

    config = LoopConfig(steps=steps, lr=5e-2, log_interval=25, **loop)
    trained = lab_train(model, batches, cross_entropy, config, seed=0, evaluate=evaluate)
    facts = RunFacts(references=ReferenceLevels.of_text(text[:cut]), loss="characters")
    read = diagnose_rows(trained.rows, facts, "loop").findings
    return [f.name for f in trained.findings], read


def tiny_model(text: str, **changes: Any) -> CharRNN:
    torch.manual_seed(0)
    vocab_size = len(Vocabulary.from_text(text))
    return CharRNN(ModelConfig(vocab_size=vocab_size, **{**TINY_MODEL, **changes}))


@pytest.mark.slow
def test_softmax_on_the_bounded_output_plateaus_on_the_alphabet(tmp_path: Path) -> None:
    """The classic mistake, reproduced by the lab (`lab.broken.SoftmaxOnOutput`), read
    from its log with the alphabet's levels."""
    torch.manual_seed(0)
    _, read = broken_loop(ALPHABET, SoftmaxOnOutput(26), 400)
    assert [f.name for f in read] == ["plateau_on_determined_text"]
    assert "no linear projection" in read[0].causes
    assert "a linear projection between the LSTM and the softmax" in read[0].advice
    # the same size with charlm's projection, trained by charlm, learns it and raises nothing
    assert train(tmp_path / "healthy", ALPHABET, model={"hidden_size": 26})[0] == []


@pytest.mark.slow
def test_gradients_never_cleared_are_exploding(tmp_path: Path) -> None:
    heard, read = broken_loop(NOTES, tiny_model(NOTES), 300, zero_grad=False)
    assert "gradients_accumulate" in heard
    exploding = next(f for f in read if f.name == "exploding_gradients")
    assert "zero_grad" in exploding.causes
    assert train(tmp_path / "healthy", NOTES, steps=300)[0] == []


@pytest.mark.slow
def test_learning_rate_far_too_low_is_a_flat_line(tmp_path: Path) -> None:
    """lr 0 is refused by the config (`lr must be > 0`); 1e-8 draws the same flat line."""
    names, directory = train(tmp_path, NOTES, lr=1e-8, steps=300)
    assert names == ["learning_rate_too_low"] == written(directory)


@pytest.mark.slow
def test_learning_rate_far_too_high(tmp_path: Path) -> None:
    try:
        names, directory = train(tmp_path, NOTES, lr=10.0, steps=300)
    except TrainingError:  # the loss became NaN: the finding is in the log all the same
        directory = tmp_path / "run"
        names = [r.finding.name for r in read_metrics(directory / "metrics.jsonl")
                 if isinstance(r, DiagnosisRow)]  # fmt: skip
    assert names[0] == "learning_rate_too_high"


def shuffled(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Targets that do not follow their inputs: the window's targets, shuffled."""
    order = torch.randperm(y.numel(), generator=torch.Generator().manual_seed(int(x.sum())))
    return y.reshape(-1)[order].reshape(y.shape)


@pytest.mark.slow
def test_targets_that_do_not_follow_the_inputs_stay_at_the_unigram_level() -> None:
    _, read = broken_loop(NOTES, tiny_model(NOTES), 400, targets=shuffled)
    assert "stuck_at_unigram" in [f.name for f in read]


@pytest.mark.slow
def test_targets_equal_to_inputs_are_named() -> None:
    _, read = broken_loop(NOTES, tiny_model(NOTES), 100, targets=lambda x, y: x.clone())
    assert [f.name for f in read] == ["predicts_current_character"]


def test_validation_unlike_training_is_a_split_mismatch(tmp_path: Path) -> None:
    """Validation as the tail of a file whose content changes along it: prose, then a
    table of numbers as long as the tail that `--split tail` holds out."""
    table = "".join(f"{i:05d} = {i * 7919 % 100000:05d};\n" for i in range(35))  # 700 chars
    text = NOTES + table
    assert int(len(text) * 0.1) > len(table)
    names, _ = train(tmp_path, text, split="tail", steps=100)
    assert names == ["split_mismatch"]
    # the same lines spread through the prose: validation looks like training
    parts = [NOTES[i * len(NOTES) // 35 : (i + 1) * len(NOTES) // 35] for i in range(35)]
    mixed = "".join(p + line for p, line in zip(parts, table.splitlines(True), strict=True))
    assert sorted(mixed) == sorted(text)
    assert train(tmp_path / "healthy", mixed, split="tail", steps=100)[0] == []


@pytest.mark.slow
def test_a_tiny_corpus_trained_long_overfits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        names, directory = train(tmp_path, NOTES, steps=1000)
    assert names == ["overfitting"] == written(directory)
    summary = checkpoint.load(directory).summary
    assert f"was at step {summary['best_step']}" in summary["diagnoses"][0]["seen"]
    lines = [r.getMessage() for r in caplog.records if "overfitting" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith("overfitting at step ")


@pytest.mark.slow
def test_patience_0_runs_on_and_the_overfitting_is_named(overfit_dir: Path) -> None:
    """`--patience 0`: the tiny preset's 1,000 steps on notes.txt, well past its best."""
    summary = checkpoint.load(overfit_dir).summary
    assert (summary["step"], summary["stop_reason"]) == (1000, "max steps")
    assert summary["best_step"] <= 400
    assert [f["name"] for f in summary["diagnoses"]] == ["overfitting"]


@pytest.mark.slow
def test_a_healthy_two_layer_run_has_no_vanishing_gradients(tmp_path: Path) -> None:
    """The saturated first layer itself is the watcher's case (tests/test_watcher.py)."""
    assert train(tmp_path, NOTES, model={"num_layers": 2}, steps=200)[0] == []


def test_a_resumed_run_does_not_repeat_a_finding(tmp_path: Path) -> None:
    vocab = Vocabulary.from_text(NOTES)
    mcfg = ModelConfig(vocab_size=len(vocab), **TINY_MODEL)

    def run(steps: int, resume: bool) -> None:
        tcfg = TrainConfig(**{**TINY_TRAIN, "lr": 1e-8, "max_steps": steps, "eval_interval": 50})
        ckpt = checkpoint.load(tmp_path / "run") if resume else None
        split = text_split(NOTES, vocab, tcfg.val_fraction)
        Trainer(mcfg, tcfg, vocab, split, tmp_path / "run", resume_from=ckpt).run()

    run(250, resume=False)  # learning_rate_too_low fires at step 200
    run(300, resume=True)
    assert written(tmp_path / "run") == ["learning_rate_too_low"]


# -- the signals against their math ----------------------------------------------------


def test_gate_signals_recompute_the_lstm() -> None:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=7, embedding_dim=4, hidden_size=5, num_layers=2))
    ids = torch.randint(0, 7, (3, 6))
    state = (torch.randn(2, 3, 5), torch.randn(2, 3, 5))
    signals = gate_signals(model, ids, state)
    # the cell state the probe averages is the LSTM's own: check it at the last step
    with torch.no_grad():
        _, (_, c) = model(ids, state)
    assert signals.gates is not None and signals.cell is not None
    assert set(signals.gates) == {"l0", "l1"}
    # by hand for layer 0: forget gate mean over streams and steps
    x = model.embedding.weight[ids]
    w_ih, w_hh = model.lstm.weight_ih_l0, model.lstm.weight_hh_l0
    b = model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0
    h0, c0 = state[0][0], state[1][0]
    forget, cells = [], []
    with torch.no_grad():
        for t in range(6):
            z = x[:, t] @ w_ih.T + h0 @ w_hh.T + b
            i, f, g, o = z.chunk(4, 1)
            c0 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
            h0 = torch.sigmoid(o) * torch.tanh(c0)
            forget.append(torch.sigmoid(f))
            cells.append(c0.abs())
    assert signals.gates["l0"]["forget"].mean == pytest.approx(
        float(torch.stack(forget).mean()), abs=1e-4
    )
    assert signals.cell["l0"] == pytest.approx(float(torch.stack(cells).mean()), abs=1e-4)
    torch.testing.assert_close(c0, c[0], atol=1e-5, rtol=0)


def test_gradient_norms_and_update_ratios() -> None:
    torch.manual_seed(1)
    model = CharRNN(ModelConfig(vocab_size=7, embedding_dim=4, hidden_size=5, num_layers=2))
    logits, _ = model(torch.randint(0, 7, (2, 5)))
    F.cross_entropy(logits.reshape(-1, 7), torch.randint(0, 7, (10,))).backward()
    norms = gradient_norms(model)
    assert list(norms) == ["embedding", "lstm.l0", "lstm.l1", "head"]
    total = float(nn.utils.clip_grad_norm_(model.parameters(), 1e9))
    assert math.sqrt(sum(v * v for v in norms.values())) == pytest.approx(total, rel=1e-5)
    before = snapshot(model)
    with torch.no_grad():
        model.head.weight.mul_(1.5)
    ratios = update_ratios(before, model)
    w, b = before["head"]
    expected = float(0.5 * w.norm() / torch.cat([w.flatten(), b]).norm())
    assert ratios["head"] == pytest.approx(expected, rel=1e-5)
    assert ratios["embedding"] == 0.0


def test_reference_levels() -> None:
    ref = ReferenceLevels.of_text("aab" * 400)
    p = {"a": 2 / 3, "b": 1 / 3}
    assert ref.unigram == pytest.approx(-sum(q * math.log(q) for q in p.values()))
    assert ref.determined_after == 2  # after "a" comes "a" or "b"; after "aa", "b"
    # alternation: a model that favours repeating gives the last character at least its
    # frequency, so "anything but the last character" is not a way of repeating it
    for text in ("abab", "ab" * 500 + "aa"):
        levels = ReferenceLevels.of_text(text)
        assert levels.repeat == pytest.approx(levels.unigram, abs=1e-3)
        assert levels.repeat == pytest.approx(math.log(2), abs=1e-3)
    alphabet = ReferenceLevels.of_text(ALPHABET)
    assert alphabet.unigram == pytest.approx(math.log(26)) and alphabet.determined_after == 1
    notes = ReferenceLevels.of_text(NOTES)
    assert notes.determined_after is None and 2.5 < notes.unigram < 4


def test_history_fires_each_detector_once() -> None:
    h = History(RunFacts(vocab_size=10))
    fired = []
    for step in range(10, 400, 10):
        fired += h.add(TrainRow(step=step, loss=math.log(10), lr=1e-3))
    assert [f.name for f in fired] == ["learning_rate_too_low"]
    assert fired[0].step == 200 and "not moved in 200 steps" in fired[0].seen
    for odd in (
        {"kind": "train", "loss": 9.0},
        {"kind": "eval", "step": "7", "val_loss": 1.0},
        {"kind": "train", "step": True, "loss": 1.0},
        {"kind": "what", "step": 5},
    ):
        assert parse_row(odd) is None  # a malformed row never reaches a history
    for unread in (TrainRow(step=400, loss=math.nan), TrainRow(step=400), EvalRow(step=400)):
        assert h.add(unread) == []
    assert len(h.train) == 39 and h.evals == []


@pytest.mark.parametrize(("patience", "fires"), [(None, True), (0, True), (4, True), (3, False)])
def test_overfitting_is_not_reported_when_patience_ends_the_run(
    patience: int | None, fires: bool
) -> None:
    """Three rises in a row after the best step: patience 3 stops the run there, keeping
    the best weights, so advice to stop at the best step would be noise."""
    h = History(RunFacts(vocab_size=10, patience=patience))
    fired = []
    for i, val in enumerate([2.3, 2.1, 2.15, 2.16, 2.18]):
        step = 100 * (i + 1)
        fired += h.add(TrainRow(step=step, loss=2.0 - 0.1 * i, lr=1e-3))
        fired += h.add(EvalRow(step=step, val_loss=val))
    assert ("overfitting" in [f.name for f in fired]) is fires


# -- charlm diagnose ------------------------------------------------------------------


def bounded_plain_loop(path: Path, steps: int = 300) -> None:
    """A user's own PyTorch loop with the classic mistake, logging a CSV."""
    torch.manual_seed(0)
    chars = sorted(set(ALPHABET))
    ids = torch.tensor([chars.index(c) for c in ALPHABET])
    emb, lstm = nn.Embedding(26, 16), nn.LSTM(16, 26, batch_first=True)
    opt = torch.optim.Adam([*emb.parameters(), *lstm.parameters()], lr=1e-2)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["step", "loss", "grad_norm"])
        for step in range(1, steps + 1):
            starts = torch.randint(0, ids.numel() - 9, (16,))
            x = torch.stack([ids[s : s + 8] for s in starts])
            y = torch.stack([ids[s + 1 : s + 9] for s in starts])
            opt.zero_grad()
            logits, _ = lstm(emb(x))  # softmax straight on the tanh-bounded output
            loss = F.cross_entropy(logits.reshape(-1, 26), y.reshape(-1))
            loss.backward()
            norm = nn.utils.clip_grad_norm_([*emb.parameters(), *lstm.parameters()], 1e9)
            opt.step()
            if step % 10 == 0:
                out.writerow([step, f"{loss.item():.5f}", f"{float(norm):.5f}"])


def test_diagnose_reads_a_plain_loops_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "loop.csv"
    bounded_plain_loop(log)
    args = ["diagnose", "--log", str(log), "--corpus", str(CORPORA / "alphabet.txt")]
    assert cli(args) == 0
    text = capsys.readouterr().out
    assert "bounded_softmax" in text and "a linear layer between the LSTM and the softmax" in text
    assert "--hidden-size" not in text  # a loop of its own: no charlm flags
    assert cli([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # the bounded softmax explains the plateau on the determined text, more precisely
    assert [f["name"] for f in report["findings"]] == ["bounded_softmax"]
    assert report["references"]["unigram"] == pytest.approx(math.log(26))
    assert report["train_loss"] > 1.0  # the plateau: far above 0


def test_diagnose_a_checkpoint(alphabet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["diagnose", str(alphabet_dir)]) == 0
    text = capsys.readouterr().out
    assert "Findings: none" in text and "beaten by 3.2" in text and "gates l0" in text
    assert cli(["diagnose", str(alphabet_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] and report["best_val_loss"] < 1e-3
    assert set(report["signals"]["gates"]["l0"]) == {"input", "forget", "cell", "output"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("step,val_loss\n1,2.0\n", "line 1: no 'loss' column"),
        ("step,loss\n10,2.5\n20,abc\n", "line 3: loss is 'abc', not a number"),
        ("step,loss\n10,2.5\nten,2.4\n", "line 3: step is 'ten', not a number"),
        ("step,loss\n10,2.5\n20.5,2.4\n", "line 3: step is '20.5', not a whole number"),
        ("step,loss\n10,2.5,7\n", "line 2: 3 values for 2 columns"),
        ('{"step": 1, "loss": 2}\n{"step": 2, "loss": "x"}\n', "line 2: loss is 'x'"),
        ('{"step": 1, "loss": 2}\n[1]\n', "line 2: a JSON list, not an object"),
        ('{"step": 1, "val_loss": 2}\n', "no line has a training loss"),
    ],
)
def test_diagnose_refuses_a_bad_log_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    log = tmp_path / ("log.jsonl" if content.startswith("{") else "log.csv")
    log.write_text(content, encoding="utf-8")
    assert cli(["diagnose", "--log", str(log)]) != 0
    err = capsys.readouterr().err
    assert message in err and str(log) in err


def test_diagnose_needs_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["diagnose"]) != 0
    assert "give a checkpoint or --log FILE" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("diagnoses", "references"),
    [
        ("all good", None),
        ([{"name": "x", "step": 1e300, "seen": "s", "causes": "c", "advice": "a"}], {}),
        ([{"name": "n" * 5000, "step": 1, "seen": [1], "causes": {}, "advice": None}] * 500, []),
        ([7, None, "x"], {"unigram": "lots", "repeat": [1], "determined_after": "1"}),
    ],
)
def test_a_summary_with_odd_diagnoses_still_loads(
    alphabet_dir: Path, tmp_path: Path, diagnoses: Any, references: Any
) -> None:
    """The summary is free-form: odd diagnosis entries are left out, never fatal."""
    directory = tmp_path / "odd"
    shutil.copytree(alphabet_dir, directory)
    manifest = directory / "checkpoint.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    data["summary"]["diagnoses"], data["summary"]["references"] = diagnoses, references
    manifest.write_text(json.dumps(data), encoding="utf-8")
    card = Predictor.from_checkpoint(directory).card.model_dump()
    diagnosis = card["training"]["diagnosis"]
    assert diagnosis is None or len(diagnosis["findings"]) <= 20
    for finding in (diagnosis or {}).get("findings", []):
        assert len(finding["name"]) <= 100
    assert diagnose_checkpoint(directory).steps == 1000  # the log is read as it is


def test_a_log_with_odd_signals_is_reported(tmp_path: Path) -> None:
    """A foreign or hand-edited log: signals of the wrong type show as '?', never crash."""
    rows = [
        {"kind": "train", "step": 10 * i, "loss": 3.0 - 0.01 * i, "grad_norm": 0.5,
         "clipped": "many", "grad_norms": {"lstm.l0": "big", "lstm.l1": None},
         "gates": {"l0": {"input": {"mean": "x", "saturated": [1]}}, "l1": 3},
         "cell": {"l0": {}}}
        for i in range(1, 30)
    ]  # fmt: skip
    log = tmp_path / "odd.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    text = diagnose_log(log).render()
    assert "gradient norm before clipping 0.5, ? of steps clipped" in text
    assert "lstm.l0 ?" in text and "input ? (? saturated); mean |c| ?" in text


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_long_log_is_read_thinned(tmp_path: Path) -> None:
    """1,020 lines read as at most 100 training rows: each 11 consecutive ones merged
    (mean loss, last step, largest gradient norm, last lr); the evaluations, one in 50
    steps, each in a stretch of its own, come through as they are, after their stretch."""
    train = [
        {"step": s, "loss": 3 - s / 1000 + s % 7 / 100, "grad_norm": s * 37 % 11 / 10, "lr": 1 / s}
        for s in range(1, 1001)
    ]
    evals = [{"kind": "eval", "step": s, "val_loss": 2.5 - s / 2000} for s in range(50, 1001, 50)]
    lines = sorted(train + evals, key=lambda r: (r["step"], "kind" in r))
    log = _jsonl(tmp_path / "long.jsonl", lines)
    expected: list[dict[str, Any]] = []
    for i in range(0, 1000, 11):
        part = train[i : i + 11]
        mean = math.fsum(r["loss"] for r in part) / len(part)
        expected.append({
            "kind": "train", "step": part[-1]["step"], "loss": mean,
            "grad_norm": max(r["grad_norm"] for r in part), "lr": part[-1]["lr"],
        })  # fmt: skip
        expected += [e for e in evals if part[0]["step"] <= e["step"] <= part[-1]["step"]]
    with open_log(log, max_train_rows=100) as opened:
        assert (opened.lines, opened.every) == (1020, 11)
        rows = list(opened.rows())
    assert sum(isinstance(r, TrainRow) for r in rows) == 91 <= 100
    assert [r.kind for r in rows] == [r["kind"] for r in expected]
    for row, want in zip(rows, expected, strict=True):
        got = row.to_json()
        assert got.pop("kind") == want.pop("kind")
        assert got == pytest.approx(want, rel=1e-12)
    assert len(read_log(log)) == 1020  # read_log merges nothing


def test_thinning_keeps_the_first_loss_that_is_not_finite(tmp_path: Path) -> None:
    rows = [{"step": s, "loss": "NaN" if 5 <= s <= 8 else 3.0} for s in range(1, 21)]
    log = tmp_path / "nan.csv"
    log.write_text("step,loss\n" + "".join(f"{r['step']},{r['loss']}\n" for r in rows))
    with open_log(log, max_train_rows=2) as opened:
        thinned = list(opened.rows())
    assert opened.every == 11
    assert [(r.kind, r.step) for r in thinned] == [
        ("train", 15), ("nonfinite", 5), ("train", 20)
    ]  # fmt: skip
    diagnosis = diagnose_rows(thinned, RunFacts(), "x")
    assert [(f.name, f.step) for f in diagnosis.findings] == [("learning_rate_too_high", 5)]


@pytest.mark.slow
def test_diagnose_says_a_long_log_was_thinned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "long.csv"
    rows = [
        f"{s},{3 - s / 100_000:.5f},{f'{3.1 - s / 100_000:.5f}' if s % 1000 == 0 else ''}\n"
        for s in range(1, 60_001)
    ]
    log.write_text("step,loss,val_loss\n" + "".join(rows), encoding="utf-8")
    assert cli(["diagnose", "--log", str(log)]) == 0
    text = capsys.readouterr().out
    assert f"Diagnosis of {log} (60,000 steps)\n  read at every 2nd logged step: each 2 " in text
    assert cli(["diagnose", "--log", str(log), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["read_every"] == 2 and report["steps"] == 60_000
    assert report["best_val_loss"] == 2.5 and report["best_step"] == 60_000


# -- loops of one's own -----------------------------------------------------------------


def test_the_bounded_softmax_floor_is_what_cross_entropy_gives() -> None:
    """A softmax of values within [-1, 1] does best with +1 on the right class and -1 on
    the others: the floor is that cross-entropy, computed by torch."""
    for v, floor in ((26, 1.478), (2, 0.127)):
        best = torch.full((1, v), -1.0, dtype=torch.float64)
        best[0, 0] = 1.0
        assert float(F.cross_entropy(best, torch.tensor([0]))) == pytest.approx(
            bounded_softmax_floor(v), abs=1e-12
        )
        assert bounded_softmax_floor(v) == pytest.approx(floor, abs=5e-4)
        # no values within [-1, 1] do better
        values = torch.rand(5000, v, dtype=torch.float64) * 2 - 1
        losses = F.cross_entropy(values, torch.zeros(5000, dtype=torch.long), reduction="none")
        assert float(losses.min()) >= bounded_softmax_floor(v)


def curve_log(path: Path, losses: list[float], every: int = 1) -> Path:
    rows = [f"{s},{loss}\n" for s, loss in enumerate(losses, start=1) if s % every == 0]
    path.write_text("step,loss\n" + "".join(rows), encoding="utf-8")
    return path


def test_a_plateau_the_run_gets_past_is_marked_passed(tmp_path: Path) -> None:
    """A loss flat at ln 2 for 600 steps, then falling: the flat line is seen, then
    passed, with where; the run is healthy, and the report lists it apart from the
    findings. Cut before the fall, the finding holds."""
    losses = [math.log(2) + 0.001 * math.sin(s) for s in range(600)]
    losses += [math.log(2) * math.exp(-(s + 1) / 100) for s in range(600)]
    full = diagnose_log(curve_log(tmp_path / "full.csv", losses))
    (finding,) = full.findings
    assert finding.name == "loss_not_moving" and finding.step == 200
    assert finding.passed is not None and finding.passed.startswith("at step 6")
    text = full.render()
    assert full.healthy and "Findings: none" in text
    assert (
        "Seen early, recovered later (not findings)\n  step 200: loss_not_moving; at step 6" in text
    )
    assert full.to_dict()["findings"] == [] and len(full.to_dict()["recovered"]) == 1
    cut = diagnose_log(curve_log(tmp_path / "cut.csv", losses[:600]))
    assert [(f.name, f.passed) for f in cut.findings] == [("loss_not_moving", None)]
    assert not cut.healthy


def test_the_corpus_and_the_vocabulary_size_say_what_the_loss_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = curve_log(tmp_path / "flat.csv", [3.0 - s / 10_000 for s in range(1, 301)])
    assert diagnose_log(log).loss == "unknown" and "nats" not in diagnose_log(log).render()
    assert diagnose_log(log, vocab_size=26).loss == "characters"
    short = tmp_path / "letters.txt"
    short.write_text("abcdefghijklmnopqrstuvwxyz", encoding="utf-8")
    assert cli(["diagnose", "--log", str(log), "--corpus", str(short)]) == 0
    out = capsys.readouterr().out
    assert "the corpus (26 characters) is too short to tell whether a short context" in out
    assert "261 in all" in out and "per-character cross-entropy" in out
    for args, message in (
        (["--vocab-size", "1"], "--vocab-size must be 2 or more"),
        (["--vocab-size", "27", "--corpus", str(short)], "the corpus has 26 different"),
    ):
        assert cli(["diagnose", "--log", str(log), *args]) == 2
        assert message in capsys.readouterr().err
    assert cli(["diagnose", "somewhere", "--vocab-size", "26"]) == 2
    assert "--vocab-size goes with --log" in capsys.readouterr().err
