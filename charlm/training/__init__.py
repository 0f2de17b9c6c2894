"""Training: from a corpus and settings to checkpoints.

config.py     TrainConfig (every field with its help) and the learning-rate schedule
presets.py    default settings by corpus size
budget.py     a smaller preset when the time budget is too short for its steps here
step.py       one optimisation step
trainer.py    Trainer: windows, evaluation, saving, stopping, callbacks around the steps
callbacks.py  StepInfo, EvalInfo, TrainResult, the TrainCallback hooks, TrainingRun (what
              a callback sees of the run)
plotting.py   PlotCallback: the run's learning_curves.png, redrawn as it trains
fit.py        fit(): corpus file + overrides -> a checked, locked, started (or resumed) run
settings_file.py  a flat TOML file of settings (`charlm train --config`), read and written
"""

from charlm.training.budget import (
    MIN_BUDGET_STEPS,
    OVERFIT_EPOCHS,
    BudgetFit,
    dropout_for_budget,
    fit_to_budget,
    time_step,
)
from charlm.training.callbacks import (
    CallbackList,
    EvalInfo,
    StepInfo,
    TrainCallback,
    TrainingRun,
    TrainResult,
)
from charlm.training.config import WARMUP_BUDGET_SHARE, TrainConfig, lr_at
from charlm.training.fit import BUDGET_ONLY_MAX_STEPS, RESUMABLE_OVERRIDES, fit
from charlm.training.presets import PRESETS, Preset, preset_for, preset_named
from charlm.training.step import StepOutcome, train_step
from charlm.training.trainer import Trainer

__all__ = [
    "BUDGET_ONLY_MAX_STEPS",
    "MIN_BUDGET_STEPS",
    "OVERFIT_EPOCHS",
    "PRESETS",
    "RESUMABLE_OVERRIDES",
    "WARMUP_BUDGET_SHARE",
    "BudgetFit",
    "CallbackList",
    "EvalInfo",
    "Preset",
    "StepInfo",
    "StepOutcome",
    "TrainCallback",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingRun",
    "dropout_for_budget",
    "fit",
    "fit_to_budget",
    "lr_at",
    "preset_for",
    "preset_named",
    "time_step",
    "train_step",
]
