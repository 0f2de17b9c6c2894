"""Training: from a corpus and settings to checkpoints.

The settings themselves, `TrainConfig` and the learning-rate schedule, live in
`charlm.train_config`, which a checkpoint reads without importing the trainer.

presets.py    default settings by corpus size
budget.py     a smaller preset when the time budget is too short for its steps here
step.py       one optimisation step
clock.py      RunClock: training time (pauses left out), speed, the budget's share used
trainer.py    Trainer: windows, evaluation, saving, stopping, callbacks around the steps
callbacks.py  StepInfo, EvalInfo, TrainResult, the TrainCallback hooks, TrainingRun (what
              a callback sees of the run)
plotting.py   PlotCallback: the run's learning_curves.png, redrawn as it trains
plan.py       RunPlan and plan_run(): every choice about a run (corpus, preset, budget,
              runtime), made once, before it starts
fit.py        fit(): the lock, the plan, the Trainer
settings_file.py  a flat TOML file of settings (`charlm train --config`), read and written
"""

from charlm.train_config import WARMUP_BUDGET_SHARE, TrainConfig, lr_at
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
from charlm.training.fit import fit
from charlm.training.plan import BUDGET_ONLY_MAX_STEPS, RESUMABLE_OVERRIDES, RunPlan, plan_run
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
    "RunPlan",
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
    "plan_run",
    "preset_for",
    "preset_named",
    "time_step",
    "train_step",
]
