"""Putting a saved run back into a fresh run's parts: weights, Adam's state, both random
generators, the carried LSTM state and the progress, each checked against the run being
resumed so that a checkpoint of another model or corpus layout is refused, not half used.

`restore_run` takes the parts it fills (the model, its optimiser, the data's random
generator) and those it checks against (the streams, the device), and returns the
progress and carried state for the trainer to continue from; it does not know the trainer.
"""

from __future__ import annotations

import torch

from charlm import checkpoint
from charlm.checkpoint import Progress
from charlm.data import Streams
from charlm.errors import ConfigError, IncompatibleCheckpointError
from charlm.model import CharRNN, State

__all__ = ["restore_run"]


def restore_run(
    ckpt: checkpoint.Checkpoint,
    model: CharRNN,
    optimizer: torch.optim.Optimizer,
    data_rng: torch.Generator,
    streams: Streams,
    device: torch.device,
) -> tuple[Progress, State | None]:
    """Load `ckpt`'s resume state into `model`, `optimizer`, torch's random generator and
    `data_rng` (built with the run's configs); return its progress and this process's
    rows of the carried state (None: none was carried), on `device`."""
    saved = ckpt.load_resume()
    try:
        model.load_state_dict(saved.model)
        opt_state = optimizer.state_dict()
        opt_state["state"] = saved.optimizer
        optimizer.load_state_dict(opt_state)
        torch.set_rng_state(saved.rng)
        data_rng.set_state(saved.data_rng)
    except (KeyError, RuntimeError, ValueError) as e:
        raise IncompatibleCheckpointError(
            f"{ckpt.label}: resume state does not fit this model ({e})"
        ) from e
    state: State | None = None
    if saved.carried is not None:
        h, c = (t.to(device) for t in saved.carried)
        expected = model.initial_state(streams.batch_size, "meta")
        if h.shape != expected[0].shape or c.shape != expected[1].shape:
            raise IncompatibleCheckpointError(
                f"{ckpt.label}: carried state has shapes {tuple(h.shape)} and "
                f"{tuple(c.shape)}, expected {tuple(expected[0].shape)} and "
                f"{tuple(expected[1].shape)}"
            )
        rows = slice(streams.rows.start, streams.rows.stop)
        state = (h[:, rows], c[:, rows])  # this rank's streams (all, for one process)
    if saved.progress.window >= len(streams.window_starts(saved.progress.offset)):
        raise ConfigError(
            f"{ckpt.label}: the corpus is laid out differently than when this checkpoint "
            "was written; resume needs the same corpus and batch settings"
        )
    return saved.progress, state
