"""Default model and training settings chosen from the size of the corpus.

A tiny corpus (the alphabet, a page of text) gets a small model, short windows and a
high learning rate, and trains in seconds; larger corpora get larger models and longer
runs. A preset may size its model by the time budget too: given `--max-minutes` of at
least `LONG_BUDGET_MINUTES`, the `large` preset trains a wider LSTM, which learns more
per step but takes more time per step, so it wins only when there is time for enough
steps. `--preset NAME` picks one whatever the corpus size; flags given on the command
line override any of these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from charlm.errors import ConfigError

__all__ = ["LONG_BUDGET_MINUTES", "PRESETS", "Preset", "preset_for", "preset_named"]

LONG_BUDGET_MINUTES = 10.0


@dataclass(frozen=True)
class Preset:
    name: str
    model: dict[str, Any]
    train: dict[str, Any]
    long_budget_model: dict[str, Any] = field(default_factory=dict)
    """Model settings that replace `model`'s for a budget of `LONG_BUDGET_MINUTES` or more."""

    def model_for(self, max_minutes: float | None) -> dict[str, Any]:
        """The model settings for a run with this time budget (None: no budget)."""
        if max_minutes is not None and max_minutes >= LONG_BUDGET_MINUTES:
            return {**self.model, **self.long_budget_model}
        return dict(self.model)


_TINY = Preset(
    name="tiny",
    model={"embedding_dim": 16, "hidden_size": 64, "num_layers": 1, "dropout": 0.0},
    train={
        "batch_size": 32,
        "seq_len": 8,
        "lr": 5e-2,
        "warmup_steps": 20,
        "max_steps": 1000,
        "eval_interval": 100,
        # a step takes about 2 ms here: logging every 25 keeps the training signals
        # (recorded at each logging step) under 5% of the run (bench/diagnostics.py)
        "log_interval": 25,
        "reset_prob": 0.5,
        # A corpus this small is learned by heart within a few hundred steps (notes.txt:
        # best validation loss at step 300 of 1000, 0.18 nats worse by the end): stop
        # after 3 evaluations without a gain.
        "patience": 3,
    },
)

_SMALL = Preset(
    name="small",
    model={"embedding_dim": 32, "hidden_size": 128, "num_layers": 2, "dropout": 0.1},
    train={
        "batch_size": 32,
        "seq_len": 64,
        "lr": 3e-3,
        "warmup_steps": 100,
        "max_steps": 3000,
        "eval_interval": 200,
        "log_interval": 20,
    },
)

_LARGE = Preset(
    name="large",
    # From sweeps on tiny Shakespeare (BENCHMARKS.md): with bf16 autocast, window 64 beat
    # 128, lr 4e-3 beat 3e-3; many cheap steps win. Without dropout the model overfits
    # after ~2 minutes (10 epochs); dropout 0.2 gave the best 5-minute result. Given 10
    # minutes or more, 384 units learn more than 256 in the same time (15-minute sweep).
    # Zeroing a stream's state before a quarter of its windows (rather than 5%) gave
    # lower 2-minute losses on tiny Shakespeare and on Python source on every metric,
    # most of all from a zero state (64-character windows: -0.027 and -0.036 nats).
    model={"embedding_dim": 64, "hidden_size": 256, "num_layers": 2, "dropout": 0.2},
    long_budget_model={"hidden_size": 384},
    train={
        "batch_size": 32,
        "seq_len": 64,
        "lr": 4e-3,
        "warmup_steps": 100,
        "max_steps": 10000,
        "eval_interval": 500,
        "log_interval": 50,
        "reset_prob": 0.25,
    },
)

TINY_CHARS = 20_000
SMALL_CHARS = 300_000

PRESETS = {p.name: p for p in (_TINY, _SMALL, _LARGE)}


def preset_named(name: str) -> Preset:
    """The preset called `name` (`--preset`), whatever the corpus size."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def preset_for(n_chars: int) -> Preset:
    """The default settings for a corpus of `n_chars` characters."""
    if n_chars < TINY_CHARS:
        return _TINY
    if n_chars < SMALL_CHARS:
        return _SMALL
    return _LARGE
