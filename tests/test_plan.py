"""A run's plan (charlm/training/plan.py): resolved once, printed by --dry-run, trained as
printed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from charlm import checkpoint
from charlm.cli import main
from charlm.errors import CheckpointExistsError, ConfigError
from charlm.model import ModelConfig
from charlm.training import Trainer, fit, plan_run
from charlm.training.settings_file import read_settings

from .conftest import CORPORA

NOTES = CORPORA / "notes.txt"


@pytest.mark.slow
def test_a_dry_run_writes_nothing_and_its_plan_trains_as_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--checkpoints-dir", str(tmp_path / "ck"), "--hidden-size", "24", "--max-steps", "12"]
    assert main(["train", str(NOTES), "--dry-run", "--eval-interval", "6", *flags]) == 0
    printed = capsys.readouterr().out
    assert not (tmp_path / "ck").exists()  # not even the directory
    assert f"# checkpoint: {tmp_path / 'ck' / 'notes'} (fresh)" in printed
    assert "# runtime: cpu, " in printed
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(printed, encoding="utf-8")
    settings = read_settings(plan_file)
    assert settings.model["hidden_size"] == 24 and settings.train["max_steps"] == 12
    assert settings.train["eval_interval"] == 6

    # the printed plan, given back as --config and nothing else, is the run trained
    argv = ["train", str(NOTES), "--config", str(plan_file), "--quiet"]
    assert main([*argv, "--checkpoints-dir", str(tmp_path / "ck")]) == 0
    ckpt = checkpoint.load(tmp_path / "ck" / "notes")
    model = ckpt.model_config.to_dict()
    assert {k: model[k] for k in settings.model} == settings.model
    assert {k: v for k, v in ckpt.train_config.to_dict().items() if v is not None} == {
        **settings.train
    }
    assert ckpt.summary["preset"] == settings.preset


def test_the_plan_refuses_what_the_run_would_refuse_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fit(NOTES, tmp_path / "a", train_overrides={"max_steps": 4, "eval_interval": 4}, plots=False)
    before = sorted(p.name for p in (tmp_path / "a").iterdir())
    with pytest.raises(CheckpointExistsError, match="already holds a checkpoint"):
        plan_run(NOTES, tmp_path / "a")
    argv = ["train", str(NOTES), "--checkpoints-dir", str(tmp_path), "--name", "a", "--dry-run"]
    assert main(argv) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err
    assert main([*argv, "--resume", "--lr", "0.5"]) == 2
    assert "--lr 0.5 differs from the checkpoint's" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="pick one"):
        plan_run(NOTES, tmp_path / "a", resume=True, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == before


def test_a_resumed_plan_keeps_the_checkpoints_settings_but_the_budgets(tmp_path: Path) -> None:
    overrides = {"max_steps": 4, "eval_interval": 4, "lr": 0.01}
    fit(NOTES, tmp_path / "a", train_overrides=overrides, plots=False)
    saved = checkpoint.load(tmp_path / "a")
    plan = plan_run(NOTES, tmp_path / "a", resume=True, train_overrides={"max_steps": 8})
    assert plan.resumed is not None and plan.resumed.summary["step"] == 4
    assert plan.model_config == saved.model_config
    assert plan.train_config.max_steps == 8 and plan.train_config.lr == 0.01
    assert "(resumes step 4)" in plan.settings_text()


def test_several_processes_share_the_cores_and_keep_the_corpus_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--checkpoints-dir", str(tmp_path), "--max-minutes", "0.01", "--dry-run"]
    assert main(["train", str(NOTES), "--nproc", "2", *flags]) == 0
    printed = capsys.readouterr().out
    assert ", 2 processes" in printed
    assert "# note:" not in printed  # the ranks would time steps differently: no budget fit
    assert not list(tmp_path.iterdir())


def test_the_trainer_of_a_plan_trains_its_settings(tmp_path: Path) -> None:
    shutil.copy(NOTES, tmp_path / "notes.txt")
    plan = plan_run(
        tmp_path / "notes.txt",
        tmp_path / "run",
        model_overrides={"hidden_size": 20},
        train_overrides={"max_steps": 5, "eval_interval": 5},
        threads=1,
    )
    result = Trainer.from_plan(plan).run()
    assert result.steps == 5
    saved = checkpoint.load(tmp_path / "run")
    assert saved.model_config == plan.model_config
    assert isinstance(saved.model_config, ModelConfig) and saved.model_config.hidden_size == 20
    assert saved.train_config == plan.train_config
    assert saved.summary["preset"] == plan.preset
