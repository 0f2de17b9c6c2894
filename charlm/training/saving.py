"""Writing a training run's checkpoint: its summary, best weights and resume state.

The trainer calls `save_run` at each evaluation (rank 0 of a data-parallel run, with
every rank's carried state gathered) with the parts a checkpoint is made of: the model,
its optimiser, the data's random generator, the progress and the carried state; `summary`
says what the checkpoint's summary records of the run. Everything is written through
`checkpoint.save`; nothing here knows the trainer.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from charlm import checkpoint
from charlm.checkpoint import Progress, ResumeState
from charlm.data import IdSplit
from charlm.model import CharRNN, ModelConfig, State
from charlm.train_config import TrainConfig
from charlm.vocab import Vocabulary

__all__ = ["run_facts", "save_run", "summary"]

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


def run_facts(
    split: IdSplit, val_blocks: torch.Tensor, model: CharRNN, bf16: bool
) -> dict[str, Any]:
    """What a checkpoint's summary records of the run's layout: whether validation is
    held out, the training and validation characters, the parameters, the precision."""
    return {
        "val_held_out": split.held_out,
        "train_chars": split.train_chars,
        "val_chars": int(val_blocks.numel()),
        "parameters": model.num_parameters(),
        "bf16": bf16,
    }


def summary(progress: Progress, stop_reason: str, *facts: Mapping[str, Any]) -> dict[str, Any]:
    """What the checkpoint's summary says of the run so far: its `progress`, why it
    stopped (None while it goes on), then the run's `facts` in order (`run_facts`, the
    diagnoses, the corpus)."""
    meta = progress.to_meta()
    said: dict[str, Any] = {k: meta[k] for k in _SUMMARY_PROGRESS}
    said["stop_reason"] = stop_reason or None
    for part in facts:
        said.update(part)
    return said


def save_run(
    directory: Path,
    *,
    model: CharRNN,
    optimizer: torch.optim.Optimizer,
    data_rng: torch.Generator,
    progress: Progress,
    carried: State | None,
    model_config: ModelConfig,
    train_config: TrainConfig,
    vocab: Vocabulary,
    summary: Mapping[str, Any],
    best: bool,
) -> None:
    """Write the run's checkpoint into `directory`: `model`'s weights as the best ones
    when `best`, and always the resume state (the weights, the optimiser's state, torch's
    and the data's random generators, `progress`, and `carried` as the state of every
    stream)."""
    resume = ResumeState(
        progress=progress,
        model=model.state_dict(),
        optimizer=optimizer.state_dict()["state"],
        carried=carried,
        rng=torch.get_rng_state(),
        data_rng=data_rng.get_state(),
    )
    checkpoint.save(
        directory,
        model_config=model_config,
        train_config=train_config,
        vocab=vocab,
        summary=summary,
        weights=model.state_dict() if best else None,
        resume=resume,
    )
