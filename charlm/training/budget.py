"""Fitting the preset to a time budget, by measuring this machine as it is now.

A preset chosen by corpus size may be too slow for a short `--max-minutes` on a slow or
busy machine: a 1-minute run that gets 40 steps ends before the model has learned
anything. So when a run has a time budget and the user fixed neither `--preset` nor the
model's shape, `fit_to_budget` times a few steps of that preset on random characters
and, while the budget holds fewer than `MIN_BUDGET_STEPS` of its steps, moves to the
next smaller preset (down to `tiny`, which is kept however slow). A step is timed as
training runs it: same model, window, batch, precision and threads.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from charlm.model import CharLSTM, ModelConfig
from charlm.runtime import train_in_bf16
from charlm.training.config import TrainConfig
from charlm.training.presets import PRESETS, Preset
from charlm.training.step import train_step

__all__ = ["MIN_BUDGET_STEPS", "BudgetFit", "fit_to_budget", "time_step"]

MIN_BUDGET_STEPS = 300
"""Fewest steps a budget must hold for a preset to be kept (the small preset's validation
loss on 35 KB of English is about 1.3 nats below the unigram level by step 200)."""

_TIMED_STEPS = 3  # after one untimed step
_BUDGET_SHARE = 0.9  # of the budget left for steps, the rest for evaluations and saves


@dataclass(frozen=True)
class BudgetFit:
    """The preset kept for a budget, and what was measured to choose it."""

    preset: Preset
    seconds_per_step: dict[str, float]
    """Median seconds per step of each preset timed, in the order timed."""
    budget_s: float

    @property
    def steps_in_budget(self) -> int:
        return _steps(self.budget_s, self.seconds_per_step[self.preset.name])

    def describe(self) -> str:
        """One line for the user, when the preset was replaced; '' when it was kept."""
        timed = list(self.seconds_per_step)
        if len(timed) == 1:
            return ""
        first = timed[0]
        return (
            f"a {self.budget_s / 60:g}-minute budget holds about "
            f"{_steps(self.budget_s, self.seconds_per_step[first]):,} steps of the {first} "
            f"preset on this machine now; using {self.preset.name} "
            f"(about {self.steps_in_budget:,} steps). --preset {first} keeps it"
        )


def fit_to_budget(
    preset: Preset, budget_s: float, seconds_per_step: Callable[[Preset], float]
) -> BudgetFit:
    """`preset`, or the largest smaller one whose steps fit `MIN_BUDGET_STEPS` into
    `budget_s`; `seconds_per_step(p)` measures a preset."""
    order = list(PRESETS.values())  # smallest first
    timed: dict[str, float] = {}
    for candidate in reversed(order[: order.index(preset) + 1]):
        timed[candidate.name] = seconds_per_step(candidate)
        if _steps(budget_s, timed[candidate.name]) >= MIN_BUDGET_STEPS:
            break
    return BudgetFit(candidate, timed, budget_s)


def time_step(model_config: ModelConfig, train_config: TrainConfig, device: torch.device) -> float:
    """Median seconds of one training step of this shape, on random characters.

    Leaves torch's global random state as it found it.
    """
    bf16 = train_in_bf16(train_config.precision, device, model_config.hidden_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CharLSTM(model_config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr)
        shape = (train_config.batch_size, train_config.seq_len)
        x = torch.randint(model_config.vocab_size, shape, device=device)
        y = torch.randint(model_config.vocab_size, shape, device=device)
        times = []
        for _ in range(_TIMED_STEPS + 1):
            t0 = time.perf_counter()
            train_step(model, optimizer, x, y, None, lr=train_config.lr, clip=1.0, bf16=bf16)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def _steps(budget_s: float, seconds_per_step: float) -> int:
    return int(budget_s * _BUDGET_SHARE / max(seconds_per_step, 1e-9))
