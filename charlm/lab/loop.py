"""The lab's training loop: one small model on windows of a task, with each classic
choice (optimiser, clipping, zeroing the gradients) a setting, so that a broken set-up
and its fix differ in exactly the settings named.

charlm's own trainer always zeroes gradients, clips and uses AdamW; the lab needs the
other choices too, which is why it has a loop of its own. It logs the rows charlm's
diagnostics read (`kind`, `step`, `loss`, `grad_norm` before clipping, `lr`, the share of
steps `clipped` since the last row; `val_loss` on held-out windows), so a broken run is
diagnosed like any other training loop's log. Models are anything whose `forward(ids)`
returns `(logits, state)`: a `CharRNN`, or a broken variant from `charlm.lab.broken`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Batches", "LoopConfig", "random_windows", "train"]

Batches = Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]
"""Draws one batch of inputs and targets, both (B, T) ids."""


@dataclass(frozen=True)
class LoopConfig:
    steps: int = 300
    lr: float = 1e-2
    optimizer: str = "adam"
    """"adam" or "sgd" (plain, no momentum)."""
    clip: float = 1.0
    """Gradient-norm clipping; 0 is none."""
    zero_grad: bool = True
    """False is the classic missing `optimizer.zero_grad()`: gradients add up."""
    log_interval: int = 10
    eval_interval: int = 50


def random_windows(ids: torch.Tensor, batch_size: int, seq_len: int) -> Batches:
    """Windows of `seq_len` + 1 ids from random offsets of `ids` (N,), each read from zero
    state, as (inputs, targets shifted by one)."""

    def draw(rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        starts = torch.randint(0, ids.numel() - seq_len, (batch_size,), generator=rng)
        rows = torch.stack([ids[s : s + seq_len + 1] for s in starts.tolist()])
        return rows[:, :-1], rows[:, 1:]

    return draw


def train(
    model: nn.Module,
    batches: Batches,
    config: LoopConfig,
    *,
    seed: int,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[dict[str, Any]]:
    """Train `model` in place for `config.steps` steps; the logged rows.

    A loss that stops being finite ends the run with a "nonfinite" row, as in charlm.
    """
    rng = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=config.lr)
    elif config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.lr)
    else:
        raise ValueError(f"optimizer {config.optimizer!r}")
    rows: list[dict[str, Any]] = []
    clipped, logged = 0, 0  # steps clipped since the last logged row; its step
    model.train()
    for step in range(1, config.steps + 1):
        x, y = batches(rng)
        if config.zero_grad:
            optimizer.zero_grad(set_to_none=True)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        if not math.isfinite(loss.item()):
            rows.append({"kind": "nonfinite", "step": step, "loss": loss.item()})
            break
        loss.backward()  # type: ignore[no-untyped-call]
        norm = float(torch.nn.utils.clip_grad_norm_(params, config.clip or math.inf))
        clipped += bool(config.clip) and norm > config.clip
        optimizer.step()
        if step % config.log_interval == 0 or step == config.steps:
            row = {"kind": "train", "step": step, "loss": loss.item(), "grad_norm": norm,
                   "lr": config.lr}  # fmt: skip
            if config.clip:  # without a threshold there is no share clipped
                row["clipped"] = round(clipped / (step - logged), 4)
            rows.append(row)
            clipped, logged = 0, step
        if validation is not None and (step % config.eval_interval == 0 or step == config.steps):
            rows.append({"kind": "eval", "step": step, "val_loss": mean_loss(model, *validation)})
    model.eval()
    return rows


def mean_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The cross-entropy the loop minimises, on (B, T) inputs and targets."""
    was = model.training
    model.eval()
    with torch.no_grad():
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    model.train(was)
    return float(loss)
