"""`TrainConfig`, the settings of a training run, and the learning-rate schedule.

Every field carries its help text (the command line's flags are derived from them) and
is checked when the config is built. The config is saved in every checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from charlm._config import MAX_SEED, check_choice, check_int, check_number, from_dict, setting
from charlm.runtime import PRECISIONS

__all__ = ["SPLITS", "WARMUP_BUDGET_SHARE", "TrainConfig", "lr_at"]

SPLITS = ("interleaved", "tail")
WARMUP_BUDGET_SHARE = 0.05
"""With a time budget, warm-up ends after this share of it at the latest."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train; saved in every checkpoint."""

    batch_size: int = setting(32, "parallel streams per step")
    seq_len: int = setting(64, "truncated-BPTT window, in characters")
    lr: float = setting(2e-3, "peak learning rate (Adam)")
    min_lr_ratio: float = setting(0.1, "final learning rate as a fraction of --lr")
    warmup_steps: int = setting(
        100, "steps of linear learning-rate warm-up (or a 20th of --max-minutes, if less)"
    )
    weight_decay: float = setting(0.0, "decoupled weight decay (AdamW)")
    clip: float = setting(1.0, "gradient-norm clipping threshold")
    max_steps: int = setting(2000, "optimiser steps (also the length of the schedule)")
    max_minutes: float | None = setting(None, "wall-clock budget for this invocation")
    eval_interval: int = setting(100, "steps between evaluations and saves")
    eval_max_chars: int = setting(262_144, "most validation characters read per evaluation")
    target_loss: float | None = setting(None, "stop once the validation loss is this low")
    patience: int | None = setting(
        None, "stop after this many evaluations without gain (0: never stop early)"
    )
    val_fraction: float = setting(0.1, "share of the corpus held out for validation")
    split: str = setting(
        "interleaved", "validation layout: interleaved or tail (see docs/training.md)"
    )
    seed: int = setting(0, "random seed (same seed, same run on a CPU)")
    log_interval: int = setting(10, "steps between rows of metrics.jsonl")
    reset_prob: float = setting(0.05, "chance that a stream's carried state is zeroed per window")
    precision: str = setting(
        "auto", "fp32, bf16 (autocast), or auto: bf16 for 256+ units where the CPU has it"
    )
    signals: str = setting(
        "on",
        "on: every metrics row also records per-layer gradient norms, update ratios and "
        "gate statistics; off: not these (the detectors still read the losses and the "
        "gradient norm)",
    )

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "max_steps", "eval_interval", "eval_max_chars"):
            check_int(name, getattr(self, name), 1)
        check_int("log_interval", self.log_interval, 1)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_number("lr", self.lr, above=0.0)
        check_number("clip", self.clip, above=0.0)
        check_number("min_lr_ratio", self.min_lr_ratio, minimum=0.0, maximum=1.0)
        check_number("weight_decay", self.weight_decay, minimum=0.0, below=1.0)
        check_number("reset_prob", self.reset_prob, minimum=0.0, maximum=1.0)
        check_number("val_fraction", self.val_fraction, minimum=0.0, below=1.0)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("split", self.split, SPLITS)
        check_choice("signals", self.signals, ("on", "off"))
        if self.max_minutes is not None:
            check_number("max_minutes", self.max_minutes, above=0.0)
        if self.target_loss is not None:
            check_number("target_loss", self.target_loss, minimum=0.0)
        if self.patience is not None:
            check_int("patience", self.patience, 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> TrainConfig:
        return from_dict(cls, data, "train config")


def lr_at(step: int, config: TrainConfig, time_fraction: float = 0.0) -> float:
    """Learning rate for optimiser step `step` (0-based): warm-up, then cosine decay.

    Each phase follows whichever budget runs out first: the steps, or (`time_fraction`,
    the share of `max_minutes` used so far) the wall-clock time. Warm-up ends after
    `warmup_steps` or `WARMUP_BUDGET_SHARE` of the time budget; the cosine reaches its
    floor at `max_steps` or at the end of the budget. So a short budget on a slow
    machine still spends most of its steps near the peak rate and ends decayed.
    """
    warm = (step + 1) / config.warmup_steps if config.warmup_steps > 0 else 1.0
    if time_fraction > 0:
        warm = max(warm, time_fraction / WARMUP_BUDGET_SHARE)
    if warm < 1.0:
        return config.lr * warm
    span = max(1, config.max_steps - config.warmup_steps)
    by_steps = (step - config.warmup_steps) / span
    by_time = (time_fraction - WARMUP_BUDGET_SHARE) / (1.0 - WARMUP_BUDGET_SHARE)
    progress = min(1.0, max(by_steps, by_time, 0.0))
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
