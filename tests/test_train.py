import copy
import itertools
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from charlm import checkpoint
from charlm.data import split_ranges
from charlm.errors import ConfigError, TrainingError
from charlm.evaluation import evaluate_streams
from charlm.inference import Predictor
from charlm.model import CharRNN, ModelConfig
from charlm.runlog import EvalRow, TrainRow, read_metrics
from charlm.runtime import bf16_native, bf16_supported, train_in_bf16
from charlm.training import (
    BUDGET_ONLY_MAX_STEPS,
    WARMUP_BUDGET_SHARE,
    StepInfo,
    TrainCallback,
    TrainConfig,
    Trainer,
    fit,
    lr_at,
)
from charlm.vocab import Vocabulary

from .conftest import CORPORA, text_split

SMALL_MODEL = {
    "embedding_dim": 8,
    "hidden_size": 16,
    "num_layers": 2,
    "dropout": 0.1,
    "weight_drop": 0.2,
}


def test_lr_schedule_warms_up_then_decays_to_the_floor() -> None:
    cfg = TrainConfig(lr=1e-2, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg) for s in range(110)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)
    assert all(a <= b for a, b in itertools.pairwise(lrs[:10]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lr_at(110, cfg) == pytest.approx(1e-3)
    assert lrs[60] == pytest.approx(1e-3 + 0.5 * 9e-3)  # half way down the cosine


def test_train_config_rejects_impossible_values() -> None:
    for bad in (
        {"lr": 0},
        {"lr": float("nan")},
        {"clip": -1},
        {"batch_size": 0},
        {"val_fraction": 1.0},
        {"split": "random"},
        {"max_minutes": 0},
        {"patience": -1},
        {"reset_prob": 2},
        {"signals": "some"},
    ):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown keys: nope"):
        TrainConfig.from_dict({"nope": 1})


class Recorder(TrainCallback):
    """Captures what each step did, to check it against an independent computation."""

    def __init__(self) -> None:
        self.trainer: Trainer | None = None
        self.records: list[dict[str, Any]] = []

    def on_start(self, trainer: Trainer) -> None:
        self.trainer = trainer

    def on_step(self, info: StepInfo) -> None:
        t = self.trainer
        assert t is not None
        self.records.append(
            {
                "info": info,
                "grads": [p.grad.clone() for p in t.model.parameters()],  # type: ignore[union-attr]
                "params": copy.deepcopy(t.model.state_dict()),
                "state": None if t.state is None else (t.state[0].clone(), t.state[1].clone()),
                "offset": t.progress.offset,
                "window": t.progress.window,
            }
        )


def test_each_step_uses_fresh_gradients_of_its_own_window(tmp_path: Path) -> None:
    text = (CORPORA / "notes.txt").read_text()
    vocab = Vocabulary.from_text(text)
    mcfg = ModelConfig(vocab_size=len(vocab), embedding_dim=8, hidden_size=16, num_layers=2)
    tcfg = TrainConfig(
        batch_size=4, seq_len=16, max_steps=6, clip=1e9, reset_prob=0.0, eval_interval=100
    )
    rec = Recorder()
    trainer = Trainer(mcfg, tcfg, vocab, text_split(text, vocab), tmp_path, callback=rec)
    trainer.run()
    for before, after in itertools.pairwise(rec.records):
        if after["window"] == 0:
            continue  # an epoch boundary resets the state; skip that pair
        model = CharRNN(mcfg)
        model.load_state_dict(before["params"])
        x, y = trainer.streams.window(
            trainer.streams.window_starts(before["offset"])[before["window"]]
        )
        logits, _ = model(x, before["state"])
        F.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1)).backward()
        expected = [p.grad for p in model.parameters()]
        for got, want in zip(after["grads"], expected, strict=True):
            torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
        norm = torch.sqrt(sum((g**2).sum() for g in expected))  # type: ignore[arg-type]
        assert after["info"].grad_norm == pytest.approx(float(norm), rel=1e-4)


def test_gradient_clipping_bounds_the_update(tmp_path: Path) -> None:
    text = (CORPORA / "notes.txt").read_text()
    vocab = Vocabulary.from_text(text)
    mcfg = ModelConfig(vocab_size=len(vocab), embedding_dim=8, hidden_size=16, num_layers=1)
    tcfg = TrainConfig(batch_size=4, seq_len=16, max_steps=3, clip=1e-3, eval_interval=100)
    rec = Recorder()
    Trainer(mcfg, tcfg, vocab, text_split(text, vocab), tmp_path, callback=rec).run()
    for r in rec.records:
        assert r["info"].grad_norm > 1e-3  # the logged norm is the one before clipping
        clipped = math.sqrt(sum(float((g**2).sum()) for g in r["grads"]))
        assert clipped == pytest.approx(1e-3, rel=1e-3)


def test_alphabet_default_run_is_certain_at_every_step(alphabet: Predictor) -> None:
    letters = "abcdefghijklmnopqrstuvwxyz"
    for start in range(26):
        text = (letters[start:] + letters * 4)[:80]
        result = alphabet.score(text)
        assert result.min_prob >= 0.999, (start, result.min_position, result.min_prob)
        assert all(s.rank == 1 for s in result.steps)


def test_alphabet_greedy_continuation_follows_the_cycle(alphabet: Predictor) -> None:
    letters = "abcdefghijklmnopqrstuvwxyz"
    for start, letter in enumerate(letters):
        cont = alphabet.predict(letter, continuation_length=130)
        expected = (letters[start + 1 :] + letters * 6)[:130]
        assert cont.continuation == expected
        assert min(s.prob for s in cont.steps) >= 0.999


def test_alphabet_checkpoint_records_the_run(alphabet_dir: Path) -> None:
    ckpt = checkpoint.load(alphabet_dir)
    assert ckpt.vocab.chars == tuple("abcdefghijklmnopqrstuvwxyz")
    assert ckpt.summary["val_held_out"] is True
    assert ckpt.summary["best_val_loss"] < 1e-3
    rows = read_metrics(alphabet_dir / "metrics.jsonl")
    evals = [r for r in rows if isinstance(r, EvalRow)]
    trains = [r for r in rows if isinstance(r, TrainRow)]
    assert evals and trains
    assert trains[0].loss is not None and trains[-1].loss is not None
    assert trains[0].loss > 1.0 > 0.01 > trains[-1].loss
    assert all(
        None not in (r.grad_norm, r.lr, r.chars_per_s, r.time_s, r.signals.clipped) for r in trains
    )


@pytest.mark.slow
def test_two_symbols_reach_four_nines(tmp_path: Path) -> None:
    fit(CORPORA / "ab.txt", tmp_path / "ab")
    p = Predictor.from_checkpoint(tmp_path / "ab")
    for text in ("abababababab", "babababababa"):
        assert p.score(text).min_prob >= 0.9999
    assert p.predict("a").next[0].char == "b"


def test_one_symbol_corpus_trains_to_zero_loss(tmp_path: Path) -> None:
    corpus = tmp_path / "a.txt"
    corpus.write_text("a" * 50)
    result = fit(corpus, tmp_path / "a", train_overrides={"max_steps": 20})
    assert result.best_val_loss == pytest.approx(0.0, abs=1e-7)
    p = Predictor.from_checkpoint(tmp_path / "a")
    assert p.score("aaaa").min_prob == pytest.approx(1.0)
    assert p.predict("a", continuation_length=5).continuation == "aaaaa"


def _run(tmp: Path, name: str, stop_at: int | None = None, resume: bool = False) -> Any:
    class Interrupt(TrainCallback):
        def on_step(self, info: StepInfo) -> None:
            if stop_at is not None and info.step == stop_at:
                raise KeyboardInterrupt

    return fit(
        CORPORA / "notes.txt",
        tmp / name,
        model_overrides={} if resume else SMALL_MODEL,
        train_overrides={} if resume else {"max_steps": 60, "eval_interval": 10, "seq_len": 16},
        resume=resume,
        callback=Interrupt(),
    )


@pytest.mark.slow
def test_resumed_run_ends_where_the_uninterrupted_run_ends(tmp_path: Path) -> None:
    straight = _run(tmp_path, "straight")
    first = _run(tmp_path, "resumed", stop_at=23)  # between evaluations, mid-epoch
    assert first.stop_reason == "interrupted" and first.steps == 23
    assert checkpoint.load(tmp_path / "resumed").summary["step"] == 23
    second = _run(tmp_path, "resumed", resume=True)
    assert second.steps == straight.steps == 60
    assert second.best_val_loss == straight.best_val_loss
    assert second.best_step == straight.best_step
    a, b = checkpoint.load(tmp_path / "straight"), checkpoint.load(tmp_path / "resumed")
    wb = b.read_weights()
    for name, tensor in a.read_weights().items():
        assert torch.equal(tensor, wb[name]), name
    ra, rb = a.load_resume().to_tensors(), b.load_resume().to_tensors()
    assert ra.keys() == rb.keys()
    for name in ra:
        assert torch.equal(ra[name], rb[name]), name
    evals = lambda d: [  # noqa: E731
        (r.step, r.val_loss) for r in read_metrics(d / "metrics.jsonl") if isinstance(r, EvalRow)
    ]
    assert evals(tmp_path / "resumed") == evals(tmp_path / "straight")


@pytest.mark.slow
def test_resume_refuses_other_architecture_and_keeps_checkpoint(tmp_path: Path) -> None:
    _run(tmp_path, "run", stop_at=12)
    manifest = (tmp_path / "run" / "checkpoint.json").read_text()
    with pytest.raises(ConfigError, match="--hidden-size 99 differs"):
        fit(
            CORPORA / "notes.txt",
            tmp_path / "run",
            model_overrides={"hidden_size": 99},
            resume=True,
        )
    with pytest.raises(ConfigError, match="--lr"):
        fit(CORPORA / "notes.txt", tmp_path / "run", train_overrides={"lr": 0.5}, resume=True)
    assert (tmp_path / "run" / "checkpoint.json").read_text() == manifest
    # Budgets may change on resume.
    result = fit(
        CORPORA / "notes.txt", tmp_path / "run", train_overrides={"max_steps": 20}, resume=True
    )
    assert result.steps == 20


@pytest.mark.slow
def test_early_stop_on_target_loss_and_patience(tmp_path: Path) -> None:
    result = fit(CORPORA / "alphabet.txt", tmp_path / "t", train_overrides={"target_loss": 0.05})
    assert result.stop_reason == "target loss" and result.steps < 1000
    assert result.val_loss <= 0.05
    result = fit(
        CORPORA / "notes.txt",
        tmp_path / "p",
        model_overrides=SMALL_MODEL,
        train_overrides={"lr": 0.3, "eval_interval": 5, "patience": 2, "max_steps": 500},
    )
    assert result.stop_reason == "no improvement" and result.steps < 500
    # The weights kept for inference are the best ones, not the last ones.
    ckpt = checkpoint.load(tmp_path / "p")
    assert result.best_step < result.steps
    text = (CORPORA / "notes.txt").read_text()
    cut = split_ranges(len(text), 0.1)
    blocks = torch.stack([ckpt.vocab.encode(text[a:b]) for a, b in cut.val])
    best_loss, _ = evaluate_streams(ckpt.build_model(), blocks)
    assert best_loss == pytest.approx(result.best_val_loss, rel=1e-5)
    last = ckpt.load_resume()
    assert not torch.equal(last.model["head.weight"], ckpt.read_weights()["head.weight"])


@pytest.mark.slow
def test_same_seed_same_run_other_seed_other_run(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        fit(
            CORPORA / "notes.txt",
            tmp_path / name,
            model_overrides=SMALL_MODEL,
            train_overrides={"max_steps": 30, "seed": seed},
        )
        runs[name] = checkpoint.load(tmp_path / name).read_weights()["head.weight"]
    assert torch.equal(runs["a"], runs["b"])
    assert not torch.equal(runs["a"], runs["c"])


@pytest.mark.slow
def test_time_budget_stops_the_run(tmp_path: Path) -> None:
    result = fit(CORPORA / "alphabet.txt", tmp_path / "b", train_overrides={"max_minutes": 0.002})
    assert result.stop_reason == "time budget" and 0 < result.steps < 1000
    assert checkpoint.load(tmp_path / "b").summary["step"] == result.steps


@pytest.mark.slow
def test_a_budget_without_a_step_count_ends_the_run_by_time(tmp_path: Path) -> None:
    fit(CORPORA / "alphabet.txt", tmp_path / "a", train_overrides={"max_minutes": 0.002})
    assert checkpoint.load(tmp_path / "a").train_config.max_steps == BUDGET_ONLY_MAX_STEPS
    both = {"max_minutes": 0.002, "max_steps": 50}
    fit(CORPORA / "alphabet.txt", tmp_path / "b", train_overrides=both)
    assert checkpoint.load(tmp_path / "b").train_config.max_steps == 50


@pytest.mark.parametrize(
    ("minutes", "hidden_override", "hidden"),
    [(None, None, 256), (5.0, None, 256), (10.0, None, 384), (15.0, 128, 128)],
)
def test_large_preset_widens_the_model_for_a_long_budget(
    tmp_path: Path, minutes: float | None, hidden_override: int | None, hidden: int
) -> None:
    train: dict[str, Any] = {"max_steps": 1, "eval_interval": 1}
    if minutes is not None:
        train["max_minutes"] = minutes
    model = {} if hidden_override is None else {"hidden_size": hidden_override}
    fit(
        CORPORA / "alphabet.txt",
        tmp_path / "m",
        preset="large",
        model_overrides=model,
        train_overrides=train,
        plots=False,
    )
    assert checkpoint.load(tmp_path / "m").model_config.hidden_size == hidden


def test_divergence_is_an_error_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    class Explode(TrainCallback):
        def on_start(self, trainer: Trainer) -> None:
            self.trainer = trainer

        def on_step(self, info: StepInfo) -> None:
            if info.step == 10:
                with torch.no_grad():
                    next(self.trainer.model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError, match="checkpoint from step 5 is intact"):
        fit(
            CORPORA / "alphabet.txt",
            tmp_path / "x",
            train_overrides={"eval_interval": 5},
            callback=Explode(),
        )
    ckpt = checkpoint.load(tmp_path / "x")
    assert ckpt.summary["step"] == 5


@pytest.mark.slow
def test_metrics_log_is_appended_on_resume_and_read_as_one_history(tmp_path: Path) -> None:
    _run(tmp_path, "m", stop_at=23)
    log = tmp_path / "m" / "metrics.jsonl"
    with open(log, "a") as f:  # rows written after the last save, then a torn line
        f.write(json.dumps({"kind": "train", "step": 999}) + "\n{torn")
    before, inode = log.read_bytes(), log.stat().st_ino
    _run(tmp_path, "m", resume=True)
    after = log.read_bytes()
    assert after.startswith(before) and log.stat().st_ino == inode  # appended, never rewritten
    steps = [r.step for r in read_metrics(log)]
    assert 999 not in steps and steps == sorted(steps) and steps[-1] == 60
    straight = _run(tmp_path, "straight")
    evals = lambda d: [  # noqa: E731
        (r.step, r.val_loss) for r in read_metrics(d / "metrics.jsonl") if isinstance(r, EvalRow)
    ]
    assert straight.steps == 60 and evals(tmp_path / "m") == evals(tmp_path / "straight")


def test_precision_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="precision must be"):
        TrainConfig(precision="fp8")
    assert train_in_bf16("auto", torch.device("cpu"), 64) is False  # too small to gain
    assert train_in_bf16("fp32", torch.device("cpu"), 256) is False


def test_auto_precision_takes_bf16_only_where_the_cpu_has_it_natively() -> None:
    """Where oneDNN only emulates bf16 (AVX-512 without its bf16 instructions) a bf16
    step took 2.2x the float32 one, so `auto` must read the CPU's own flags."""
    cpu = torch.device("cpu")
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        pytest.skip("no /proc/cpuinfo to read the CPU's flags from")
    flags = set(info.read_text().split())
    native = bool({"avx512_bf16", "amx_bf16"} & flags) and bf16_supported(cpu)
    assert bf16_native(cpu) is native
    assert train_in_bf16("auto", cpu, 256) is native
    assert train_in_bf16("auto", cpu, 256, cell="gru") is False
    if bf16_supported(cpu):  # asked for by name, emulated bf16 still runs
        assert train_in_bf16("bf16", cpu, 64) is True


@pytest.mark.slow
@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="no bf16 on this CPU")
def test_bf16_autocast_trains_like_fp32(tmp_path: Path) -> None:
    losses = {}
    for precision in ("fp32", "bf16"):
        result = fit(
            CORPORA / "notes.txt",
            tmp_path / precision,
            model_overrides={"hidden_size": 256},
            train_overrides={"max_steps": 150, "precision": precision, "lr": 0.01},
        )
        losses[precision] = result.best_val_loss
        summary = checkpoint.load(tmp_path / precision).summary
        assert summary["bf16"] is (precision == "bf16")
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.03)
    assert checkpoint.load(tmp_path / "bf16").read_weights()["head.weight"].dtype == torch.float32


def test_time_budget_drives_the_schedule() -> None:
    cfg = TrainConfig(lr=1e-2, warmup_steps=10, max_steps=10_000, min_lr_ratio=0.1)
    assert lr_at(100, cfg, time_fraction=1.0) == pytest.approx(1e-3)
    half = WARMUP_BUDGET_SHARE + 0.5 * (1 - WARMUP_BUDGET_SHARE)  # half-way through the decay
    assert lr_at(100, cfg, time_fraction=half) == pytest.approx(1e-3 + 0.5 * 9e-3)
    assert lr_at(100, cfg, time_fraction=0.0) == pytest.approx(lr_at(100, cfg))
    # Steps bind first: the decay follows the steps.
    assert lr_at(5_000, cfg, time_fraction=0.06) == pytest.approx(lr_at(5_000, cfg))


def test_time_budget_ends_the_warm_up_on_a_slow_machine() -> None:
    """A run that gets few steps in its budget must not spend them warming up."""
    cfg = TrainConfig(lr=1e-2, warmup_steps=100, max_steps=10_000, min_lr_ratio=0.1)
    share = WARMUP_BUDGET_SHARE
    assert lr_at(1, cfg, time_fraction=share / 2) == pytest.approx(0.5e-2)  # time leads
    assert lr_at(59, cfg, time_fraction=share / 2) == pytest.approx(0.6e-2)  # steps lead
    assert lr_at(5, cfg, time_fraction=share) == pytest.approx(1e-2)  # warm-up over by time
    after = lr_at(6, cfg, time_fraction=share + 1e-6)
    assert after == pytest.approx(1e-2, rel=1e-6)  # the decay starts where warm-up ended
    assert lr_at(40, cfg, time_fraction=1.0) == pytest.approx(1e-3)  # and ends at the floor
    lrs = [lr_at(s, cfg, time_fraction=s / 40) for s in range(41)]  # 40 steps in the budget
    assert max(lrs) == pytest.approx(1e-2, rel=0.01)
    assert lrs[0] < lrs[1] < lrs[2]  # rises only at the start
    assert lrs[2:] == sorted(lrs[2:], reverse=True)
