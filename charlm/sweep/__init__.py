"""Hyperparameter sweeps with Optuna: many short training runs, the best settings kept.

space.py    the search space: its TOML file format, the checks, the default space
study.py    the study and its storage (SQLite, or PostgreSQL for several machines),
            one `training.fit` run per trial, pruning through a training callback
report.py   best.toml (for `charlm train --config`), trials.csv, trials.md, sweep.png

A sweep is a client of the library: each trial calls `fit` and watches it through a
`TrainCallback`; nothing here reaches into the trainer's loop.
"""

from charlm.sweep.report import Report, best_trial, write_report
from charlm.sweep.space import DEFAULT_SPACE, DEFAULT_SPACE_TOML, Param, Space, read_space
from charlm.sweep.study import (
    PRUNED,
    Objective,
    PruneCallback,
    check_storage,
    default_storage,
    open_storage,
    open_study,
    run_trials,
    shown_url,
    trial_directory,
)

__all__ = [
    "DEFAULT_SPACE",
    "DEFAULT_SPACE_TOML",
    "PRUNED",
    "Objective",
    "Param",
    "PruneCallback",
    "Report",
    "Space",
    "best_trial",
    "check_storage",
    "default_storage",
    "open_storage",
    "open_study",
    "read_space",
    "run_trials",
    "shown_url",
    "trial_directory",
    "write_report",
]
