"""Fitting the preset to a time budget, by measuring this machine as it is now.

A preset chosen by corpus size may be too slow for a short `--max-minutes` on a slow or
busy machine: a 1-minute run that gets 40 steps ends before the model has learned
anything. So when a run has a time budget and the user fixed neither `--preset` nor the
model's shape, `fit_to_budget` times a few steps of that preset on random characters
and, while the budget holds fewer than `MIN_BUDGET_STEPS` of its steps, moves to the
next smaller preset (down to `tiny`, which is kept however slow). A step is timed as
training runs it: same model, window, batch, precision and threads. The same measure
says how many epochs the budget holds; under `OVERFIT_EPOCHS` the run cannot overfit,
and the preset's dropout (which only slows learning then) is turned off.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from charlm.model import CharRNN, ModelConfig
from charlm.runtime import train_in_bf16
from charlm.train_config import TrainConfig
from charlm.training.presets import PRESETS, Preset
from charlm.training.step import train_step

__all__ = [
    "MIN_BUDGET_STEPS",
    "OVERFIT_EPOCHS",
    "BudgetFit",
    "dropout_for_budget",
    "fit_to_budget",
    "time_step",
]

MIN_BUDGET_STEPS = 300
"""Fewest steps a budget must hold for a preset to be kept (the small preset's validation
loss on 35 KB of English is about 1.3 nats below the unigram level by step 200)."""

OVERFIT_EPOCHS = 3.0
"""A run that can read its training text fewer times than this gets no dropout: it cannot
overfit (on 4.5 MB of Python source, 2 minutes hold 0.9 epochs and dropout 0.2 cost
0.006 nats; on tiny Shakespeare a 2x256 model starts to overfit after about 10)."""

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

    def epochs(self, train_chars: int, batch_size: int, seq_len: int) -> float:
        """How many times the budget's steps would read `train_chars` characters."""
        return self.steps_in_budget * batch_size * seq_len / max(1, train_chars)

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


def dropout_for_budget(
    model_config: ModelConfig, fit: BudgetFit, train_config: TrainConfig, train_chars: int
) -> tuple[ModelConfig, str]:
    """`model_config` without dropout or weight drop when the budget holds under
    `OVERFIT_EPOCHS` of `train_chars`, and the line that says so ('' when they are kept)."""
    epochs = fit.epochs(train_chars, train_config.batch_size, train_config.seq_len)
    kept = [
        f"--{flag} {value:g}"
        for flag, value in (
            ("dropout", model_config.dropout),
            ("weight-drop", model_config.weight_drop),
        )
        if value > 0
    ]
    if epochs >= OVERFIT_EPOCHS or not kept:
        return model_config, ""
    return replace(model_config, dropout=0.0, weight_drop=0.0), (
        f"the budget holds about {epochs:.1f} epochs of this corpus, too few to overfit: "
        f"training without dropout ({' '.join(kept)} keeps it)"
    )


def time_step(model_config: ModelConfig, train_config: TrainConfig, device: torch.device) -> float:
    """Median seconds of one training step of this shape, on random characters.

    Leaves torch's global random state as it found it.
    """
    bf16 = train_in_bf16(
        train_config.precision, device, model_config.hidden_size, model_config.cell
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CharRNN(model_config).to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=train_config.lr, fused=device.type in ("cpu", "cuda")
        )
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
