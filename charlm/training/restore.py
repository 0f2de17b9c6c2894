"""Putting a saved run back into a fresh `Trainer`: weights, Adam's state, both random
generators, the carried LSTM state and the progress, each checked against the run being
resumed so that a checkpoint of another model or corpus layout is refused, not half used."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from charlm import checkpoint
from charlm.errors import ConfigError, IncompatibleCheckpointError

if TYPE_CHECKING:
    from charlm.training.trainer import Trainer

__all__ = ["restore_run"]


def restore_run(trainer: Trainer, ckpt: checkpoint.Checkpoint) -> None:
    """Load `ckpt`'s resume state into `trainer` (built with the same configs)."""
    saved = ckpt.load_resume()
    try:
        trainer.model.load_state_dict(saved.model)
        opt_state = trainer.optimizer.state_dict()
        opt_state["state"] = saved.optimizer
        trainer.optimizer.load_state_dict(opt_state)
        torch.set_rng_state(saved.rng)
        trainer.data_rng.set_state(saved.data_rng)
    except (KeyError, RuntimeError, ValueError) as e:
        raise IncompatibleCheckpointError(
            f"{ckpt.label}: resume state does not fit this model ({e})"
        ) from e
    if saved.carried is not None:
        h, c = (t.to(trainer.device) for t in saved.carried)
        expected = trainer.model.initial_state(trainer.streams.batch_size, "meta")
        if h.shape != expected[0].shape or c.shape != expected[1].shape:
            raise IncompatibleCheckpointError(
                f"{ckpt.label}: carried state has shapes {tuple(h.shape)} and "
                f"{tuple(c.shape)}, expected {tuple(expected[0].shape)} and "
                f"{tuple(expected[1].shape)}"
            )
        rows = slice(trainer.streams.rows.start, trainer.streams.rows.stop)
        trainer.state = (h[:, rows], c[:, rows])  # this rank's streams (all, for one process)
    trainer.progress = saved.progress
    if trainer.progress.window >= len(trainer.streams.window_starts(trainer.progress.offset)):
        raise ConfigError(
            f"{ckpt.label}: the corpus is laid out differently than when this checkpoint "
            "was written; resume needs the same corpus and batch settings"
        )
