"""Writing a training run's checkpoint: its summary, best weights and resume state.

The trainer calls `save_run` at each evaluation (rank 0 of a data-parallel run, with
every rank's carried state gathered); everything is written through `checkpoint.save`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from charlm import checkpoint
from charlm.checkpoint import ResumeState
from charlm.model import State

if TYPE_CHECKING:
    from charlm.training.trainer import Trainer

__all__ = ["save_run"]

_SUMMARY_PROGRESS = (
    "step",
    "epoch",
    "elapsed_s",
    "chars_seen",
    "train_loss",
    "val_loss",
    "best_val_loss",
    "best_step",
)


def summary(t: Trainer) -> dict[str, Any]:
    """What the checkpoint's summary says of the run so far."""
    meta = t.progress.to_meta()
    return {
        **{k: meta[k] for k in _SUMMARY_PROGRESS},
        "stop_reason": t.stop_reason or None,
        "val_held_out": t.split.held_out,
        "train_chars": t.split.train_chars,
        "val_chars": int(t.val_blocks.numel()),
        "parameters": t.model.num_parameters(),
        "bf16": t.bf16,
        **t.monitor.summary(),
        **t.corpus_info,
    }


def save_run(t: Trainer, *, improved: bool, carried: State | None) -> None:
    """Write `t`'s checkpoint: new best weights when `improved` (or when none are on disk
    yet), and always the resume state, with `carried` as the state of every stream."""
    weights = t.model.state_dict() if improved or not t.has_best else None
    resume = ResumeState(
        progress=t.progress,
        model=t.model.state_dict(),
        optimizer=t.optimizer.state_dict()["state"],
        carried=carried,
        rng=torch.get_rng_state(),
        data_rng=t.data_rng.get_state(),
    )
    checkpoint.save(
        t.directory,
        model_config=t.model_config,
        train_config=t.config.to_dict(),
        vocab=t.vocab,
        summary=summary(t),
        weights=weights,
        resume=resume,
    )
