"""The lab's training loop, under charlm's watcher: one small model, its batches and its
loss, with each classic choice (optimiser, momentum, clipping, zeroing the gradients,
calling backward at all) a setting, so that a broken set-up and its fix differ in exactly
the settings named.

charlm's own trainer always zeroes gradients, clips and uses AdamW; the lab needs the
other choices too, which is why it has a loop of its own. It is written as a user's loop
is, with the watcher's two lines added (`watch(model, optimizer)` before the loop,
`step(loss, **metrics)` in it), so what the watcher says about a lab run is what it would
say about the post's own loop. `train` returns the logged rows (`charlm.runlog`'s: a
`TrainRow` with the loss and the gradient norm before clipping, an `EvalRow` with the
metrics of each evaluation) and the watcher's findings.
A model is any module whose `forward(x)` returns its output, or `(output, state)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from charlm.diagnostics.findings import Finding
from charlm.runlog import EvalRow, NonfiniteRow, Row, TrainRow
from charlm.watcher import watch

__all__ = [
    "Batches",
    "LoopConfig",
    "Trained",
    "cross_entropy",
    "random_windows",
    "train",
]

Batches = Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
"""Draws one batch: (inputs, targets)."""
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(the model's output, the targets) -> the loss the loop minimises."""
Evaluate = Callable[[nn.Module], dict[str, float]]
"""The metrics of a held-out evaluation (`val_loss`, `val_accuracy`), run without
gradients."""


@dataclass(frozen=True)
class LoopConfig:
    steps: int = 300
    lr: float = 1e-2
    optimizer: str = "adam"
    """"adam" or "sgd"."""
    momentum: float = 0.0
    """SGD's momentum."""
    clip: float = 0.0
    """Gradient-norm clipping; 0 is none."""
    zero_grad: bool = True
    """False is the classic missing `optimizer.zero_grad()`: gradients add up."""
    backward: bool = True
    """False is the classic missing `loss.backward()`: the optimizer steps with no
    gradient."""
    log_interval: int = 10
    eval_interval: int = 100

    def replace(self, **changes: Any) -> LoopConfig:
        return LoopConfig(**{**self.__dict__, **changes})


@dataclass
class Trained:
    """What a run of `train` leaves: its logged rows and what the watcher found."""

    rows: list[Row]
    findings: list[Finding] = field(default_factory=list)


def random_windows(ids: torch.Tensor, batch_size: int, seq_len: int) -> Batches:
    """Windows of `seq_len` + 1 ids from random offsets of `ids` (N,), each read from zero
    state, as (inputs, targets shifted by one)."""

    def draw(rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, ids.numel() - seq_len, (batch_size,), generator=rng)
        rows = torch.stack([ids[s : s + seq_len + 1] for s in starts.tolist()])
        return rows[:, :-1], rows[:, 1:]

    return draw


def cross_entropy(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The cross-entropy of logits (..., C) against class ids (...)."""
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), targets.reshape(-1))


def train(
    model: nn.Module,
    batches: Batches,
    loss_fn: Loss,
    config: LoopConfig,
    *,
    seed: int,
    evaluate: Evaluate | None = None,
    labels: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Trained:
    """Train `model` in place for `config.steps` steps under the watcher. `evaluate` runs
    every `eval_interval` steps and at the last; `labels`, the training and validation
    set's class labels, are given to the watcher (`Watcher.split`).

    A loss that stops being finite ends the run with a `NonfiniteRow`, as in charlm.
    """
    rng = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=config.lr)
    elif config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)
    else:
        raise ValueError(f"optimizer {config.optimizer!r}")
    rows: list[Row] = []
    watcher = watch(model, optimizer, echo=None)
    try:
        if labels is not None:
            watcher.split(*labels)
        model.train()
        for step in range(1, config.steps + 1):
            x, y = batches(rng)
            if config.zero_grad:
                optimizer.zero_grad(set_to_none=True)
            out = model(x)
            loss = loss_fn(out[0] if isinstance(out, tuple) else out, y)
            if not math.isfinite(loss.item()):
                rows.append(NonfiniteRow(step=step, loss=loss.item()))
                break
            if config.backward:
                loss.backward()  # type: ignore[no-untyped-call]
            norm = float(torch.nn.utils.clip_grad_norm_(params, config.clip or math.inf))
            optimizer.step()
            metrics: dict[str, float] = {}
            if evaluate is not None and (step % config.eval_interval == 0 or step == config.steps):
                with torch.no_grad():
                    metrics = evaluate(model)
                rows.append(EvalRow.named(step, metrics))
            watcher.step(loss, **metrics)
            if step % config.log_interval == 0 or step == config.steps:
                rows.append(TrainRow(step=step, loss=loss.item(), grad_norm=norm))
        findings = sorted([*watcher.findings, *watcher.passed], key=lambda f: f.step)
    finally:
        watcher.close()
        model.eval()
    return Trained(rows, findings)
