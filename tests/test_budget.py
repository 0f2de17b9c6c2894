"""A short time budget on a slow machine gets a preset whose steps fit into it."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from charlm import checkpoint
from charlm.model import ModelConfig
from charlm.progress import ProgressBar
from charlm.training import (
    MIN_BUDGET_STEPS,
    OVERFIT_EPOCHS,
    PRESETS,
    TrainConfig,
    dropout_for_budget,
    fit,
    fit_to_budget,
    preset_for,
    time_step,
)

from .conftest import CORPORA


def test_a_preset_too_slow_for_the_budget_gives_way_to_a_smaller_one() -> None:
    seconds = {"large": 1.0, "small": 0.1, "tiny": 0.01}
    timed: list[str] = []

    def measure(preset: object) -> float:
        name = preset.name  # type: ignore[attr-defined]
        timed.append(name)
        return seconds[name]

    chosen = fit_to_budget(PRESETS["large"], 60.0, measure)
    assert chosen.preset.name == "small"  # 54 steps of large, 540 of small
    assert timed == ["large", "small"]  # the smaller ones are timed only when needed
    assert chosen.steps_in_budget == 540 >= MIN_BUDGET_STEPS
    assert "holds about 54 steps of the large preset" in chosen.describe()
    assert "--preset large keeps it" in chosen.describe()

    roomy = fit_to_budget(PRESETS["large"], 600.0, measure)
    assert roomy.preset.name == "large" and roomy.describe() == ""

    timed.clear()
    slowest = fit_to_budget(PRESETS["small"], 1.0, measure)
    assert slowest.preset.name == "tiny"  # the smallest is kept however slow
    assert timed == ["small", "tiny"]


def test_time_step_measures_a_real_step() -> None:
    model = ModelConfig(vocab_size=30, embedding_dim=8, hidden_size=16, num_layers=1)
    seconds = time_step(model, TrainConfig(batch_size=4, seq_len=8), torch.device("cpu"))
    assert 0 < seconds < 60
    before = torch.random.get_rng_state()
    time_step(model, TrainConfig(batch_size=4, seq_len=8), torch.device("cpu"))
    assert torch.equal(torch.random.get_rng_state(), before)  # a run's seeding is untouched


@pytest.mark.slow
def test_a_budget_too_short_for_the_size_preset_trains_a_smaller_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """25,000 characters choose `small`; 0.3 s hold far fewer than 300 of its steps."""
    notes = (CORPORA / "notes.txt").read_text()
    corpus = tmp_path / "notes25k.txt"
    corpus.write_text((notes * (25_000 // len(notes) + 1))[:25_000])
    assert preset_for(25_000).name == "small"
    with caplog.at_level(logging.WARNING):
        fit(corpus, tmp_path / "run", train_overrides={"max_minutes": 0.005}, plots=False)
    ckpt = checkpoint.load(tmp_path / "run")
    assert ckpt.summary["preset"] == "tiny"
    assert ckpt.model_config.hidden_size == PRESETS["tiny"].model["hidden_size"]
    assert "steps of the small preset" in caplog.text

    # Fixing the preset or the model's shape keeps what the user asked for.
    fit(
        corpus,
        tmp_path / "kept",
        preset="small",
        train_overrides={"max_minutes": 0.005},
        plots=False,
    )
    assert checkpoint.load(tmp_path / "kept").summary["preset"] == "small"
    fit(
        corpus,
        tmp_path / "shaped",
        model_overrides={"hidden_size": 96},
        train_overrides={"max_minutes": 0.005},
        plots=False,
    )
    shaped = checkpoint.load(tmp_path / "shaped")
    assert shaped.summary["preset"] == "small" and shaped.model_config.hidden_size == 96


def _bar_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], **train: object) -> str:
    bar = ProgressBar()
    bar.interactive = True  # draw the bar as on a terminal
    fit(
        CORPORA / "alphabet.txt",
        tmp_path / "run",
        train_overrides=train,
        callback=bar,
        plots=False,
        overwrite=True,
    )
    bar.close()
    return capsys.readouterr().err


@pytest.mark.slow
def test_the_progress_bar_of_a_time_budget_counts_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _bar_output(tmp_path, capsys, max_minutes=0.02)
    assert "1000000000" not in err and "1,000,000,000" not in err
    assert "of 0:01, " in err and " left, step " in err  # 1.2 s shown as 0:01
    assert re.search(r"100%\|.*0:01 of 0:01, 0:00 left, step [\d,]+,", err)

    err = _bar_output(tmp_path, capsys, max_minutes=0.02, max_steps=30)
    assert "step 30/30" in err  # the steps ended it first, and the bar says so

    err = _bar_output(tmp_path, capsys, max_steps=30)
    assert "30/30" in err and " left" not in err  # no budget: a bar of steps


@pytest.mark.slow
def test_progress_lines_off_a_terminal_say_the_budget_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bar = ProgressBar()
    bar.interactive = False
    fit(
        CORPORA / "alphabet.txt",
        tmp_path / "run",
        train_overrides={"max_minutes": 0.02, "eval_interval": 50},
        callback=bar,
        plots=False,
    )
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.endswith("of the budget left") for line in lines)
    assert lines[-1].endswith("0:00 of the budget left")


def test_dropout_is_off_when_the_budget_cannot_overfit() -> None:
    """The budget's measured steps say how many epochs it holds."""
    large = PRESETS["large"]
    model = ModelConfig(vocab_size=166, **large.model)
    train = TrainConfig(**large.train)
    fit_ = fit_to_budget(large, 120.0, lambda p: 0.06)  # 1,800 steps of 2,048 characters
    assert fit_.epochs(4_000_000, train.batch_size, train.seq_len) == pytest.approx(0.92, 0.01)

    big, said = dropout_for_budget(model, fit_, train, 4_000_000)  # 4 MB: under an epoch
    assert big.dropout == 0.0 and "about 0.9 epochs" in said and "--dropout 0.2" in said
    assert big.hidden_size == model.hidden_size

    small, said = dropout_for_budget(model, fit_, train, 1_000_000)  # 3.7 epochs: can overfit
    assert small.dropout == 0.2 and said == ""
    assert OVERFIT_EPOCHS == 3.0

    dropped = replace(model, weight_drop=0.25)
    off, said = dropout_for_budget(dropped, fit_, train, 4_000_000)
    assert (off.dropout, off.weight_drop) == (0.0, 0.0)
    assert "--dropout 0.2 --weight-drop 0.25 keeps it" in said
    only_wd, said = dropout_for_budget(replace(dropped, dropout=0.0), fit_, train, 4_000_000)
    assert only_wd.weight_drop == 0.0 and said.endswith("(--weight-drop 0.25 keeps it)")
