"""Many small recurrent models trained together as one: `BatchedCells`.

A grid of experiments (cells x gaps x repeats) is hundreds of models of a few dozen
units; trained one after another, each would spend its time in Python and kernel-launch
overhead, not arithmetic. `BatchedCells` holds R independent one-layer models, every
weight with a leading model dimension R, and steps all of them with one batched matrix
product per time step (`torch.baddbmm`). Nothing is shared between models: each has
its own weights, data and gradient, Adam's update is elementwise (so one Adam over the
stacked weights is R independent Adams), and `clip_per_model` clips each model's own
gradient norm.

The equations are PyTorch's own `nn.LSTM`, `nn.GRU` and `nn.RNN` (tanh), with the gate
rows in their order; tests check each model against those modules holding its weights.
Inputs are symbol ids, so the input weights are a table (one row per symbol, as an
embedding followed by W_ih would give).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from charlm.model import CELLS

__all__ = ["BatchedCells", "clip_per_model", "key_gradient"]


class BatchedCells(nn.Module):
    """R one-layer `cell` models over `vocab` symbols, `hidden` units each, with a
    linear head to `vocab` logits."""

    def __init__(self, cell: str, models: int, vocab: int, hidden: int) -> None:
        super().__init__()
        self.cell, self.models, self.hidden = cell, models, hidden
        gates = CELLS[cell] * hidden
        bound = 1 / math.sqrt(hidden)  # PyTorch's own initialisation of these modules

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.w_in = uniform(models, vocab, gates)  # W_ih^T rows, one per symbol
        self.w_hh = uniform(models, hidden, gates)  # W_hh^T
        self.b_ih = uniform(models, 1, gates)
        self.b_hh = uniform(models, 1, gates)
        self.head_w = uniform(models, hidden, vocab)
        self.head_b = uniform(models, 1, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (R, B, T), each model its own sequences, from zero state; the logits after
        the last symbol, (R, B, V)."""
        return self.read(self.input_terms(ids))

    def input_terms(self, ids: torch.Tensor) -> torch.Tensor:
        """Each symbol's input-side term, (R, B, T, G): its row of W_ih plus the biases
        that add to it."""
        rows = torch.arange(ids.shape[0], device=ids.device).view(-1, 1, 1)
        bias = self.b_ih if self.cell == "gru" else self.b_ih + self.b_hh
        return self.w_in[rows, ids] + bias.unsqueeze(2)

    def read(self, inputs: torch.Tensor) -> torch.Tensor:
        """Run the cells over input terms (R, B, T, G); the last logits, (R, B, V)."""
        R, B, _, _ = inputs.shape
        H = self.hidden
        h = inputs.new_zeros(R, B, H)
        c = inputs.new_zeros(R, B, H)
        # One view per step, made at once: slicing inside the loop would make backward
        # write a zero gradient of the whole input for every step.
        for x in inputs.unbind(2):
            if self.cell == "gru":
                hh = torch.baddbmm(self.b_hh, h, self.w_hh)  # (R, B, 3H)
                r = torch.sigmoid(x[..., :H] + hh[..., :H])
                z = torch.sigmoid(x[..., H : 2 * H] + hh[..., H : 2 * H])
                n = torch.tanh(x[..., 2 * H :] + r * hh[..., 2 * H :])
                h = n + z * (h - n)
                continue
            pre = torch.baddbmm(x, h, self.w_hh)
            if self.cell == "rnn":
                h = torch.tanh(pre)
                continue
            i, f, g, o = pre.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return torch.baddbmm(self.head_b, h, self.head_w)

    def load_module(self, index: int, module: nn.LSTM | nn.GRU | nn.RNN) -> None:
        """Copy a one-layer PyTorch module's weights (input size = vocab, one-hot
        inputs) into model `index`; for tests."""
        with torch.no_grad():
            for mine, theirs in (("w_in", "weight_ih_l0"), ("w_hh", "weight_hh_l0")):
                getattr(self, mine)[index] = getattr(module, theirs).T
            for mine, theirs in (("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
                getattr(self, mine)[index, 0] = getattr(module, theirs)


def clip_per_model(model: BatchedCells, max_norm: float) -> torch.Tensor:
    """Scale each model's gradient to norm at most `max_norm`; the norms before, (R,)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    squares = torch.stack([g.pow(2).flatten(1).sum(1) for g in grads]).sum(0)  # (R,)
    norms = squares.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))
    return norms


def key_gradient(model: BatchedCells, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How much of the loss's gradient reaches the first symbol, per model (R,): the norm
    of d loss / d input at the first step over its norm at the last step. A cell whose
    gradient vanishes across the gap shows a ratio near 0."""
    inputs = model.input_terms(ids).detach().requires_grad_(True)
    logits = model.read(inputs)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
    )
    (grad,) = torch.autograd.grad(loss, inputs)
    first = grad[:, :, 0].flatten(1).norm(dim=1)
    last = grad[:, :, -1].flatten(1).norm(dim=1)
    ratio: torch.Tensor = first / last.clamp_min(1e-30)
    return ratio
