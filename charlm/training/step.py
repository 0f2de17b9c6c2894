"""One optimisation step, and nothing around it.

Clear the gradients, run one window of every stream from the carried state (under bf16
autocast if asked), take the cross-entropy of the logits against the next characters,
backpropagate, clip the gradient norm (the norm before clipping is returned), and step
the optimiser at the given learning rate. A step whose loss is not finite changes
nothing; one whose gradient norm is not finite skips the update. A probed step also
returns each parameter group's gradient norm before clipping and its update-to-weight
ratio (`diagnostics.signals`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from charlm.diagnostics.signals import gradient_norms, snapshot, update_ratios
from charlm.model import CharRNN, State

__all__ = ["StepOutcome", "train_step"]


@dataclass(frozen=True)
class StepOutcome:
    loss: float
    grad_norm: float
    updated: bool
    state: State | None
    """The state after the window, detached (None if the loss was not finite)."""
    grad_norms: dict[str, float] | None = None
    update_ratios: dict[str, float] | None = None
    """Per parameter group, for a probed step that updated (else None)."""


def train_step(
    model: CharRNN,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    state: State | None,
    *,
    lr: float,
    clip: float,
    bf16: bool = False,
    probe: bool = False,
    net: torch.nn.Module | None = None,
) -> StepOutcome:
    """One step on inputs `x` and targets `y`, both (B, T), from `state`.

    `net` is what the forward pass runs through when it is not `model` itself: the
    model wrapped in DistributedDataParallel, whose backward averages the gradients over
    the ranks.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, torch.bfloat16, enabled=bf16):
        logits, new_state = (net or model)(x, state)  # (B, T, V)
    logits = logits.float()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    loss_value = loss.item()
    if not math.isfinite(loss_value):
        return StepOutcome(loss_value, math.nan, False, None)
    loss.backward()  # type: ignore[no-untyped-call]
    norms = gradient_norms(model) if probe else None
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
    updated = math.isfinite(grad_norm)
    ratios = None
    if updated:
        before = snapshot(model) if probe else None
        optimizer.step()
        ratios = update_ratios(before, model) if before is not None else None
    return StepOutcome(
        loss_value,
        grad_norm,
        updated,
        (new_state[0].detach(), new_state[1].detach()),
        norms,
        ratios,
    )
