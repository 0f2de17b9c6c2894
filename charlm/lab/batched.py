"""Many small recurrent models trained together as one: `BatchedCells`.

A grid of experiments (cells x initialisations x lengths x repeats) is hundreds of models
of a unit or a few; trained one after another, each would spend its time in Python and
kernel-launch overhead, not arithmetic. `BatchedCells` holds R independent one-layer
models, every weight with a leading model dimension R, and steps all of them with one
batched matrix product per time step (`torch.baddbmm`). Nothing is shared between
models: each has its own weights, data and gradient, and Adam's update is elementwise
(so one Adam over the stacked weights is R independent Adams).

The equations are PyTorch's own `nn.LSTM` and `nn.RNN` (tanh), with the gate rows in
their order; tests check each model against those modules holding its weights, and
`export` hands one model back as those modules. Each model starts with PyTorch's
initialisation of them, or with Keras's (`init_keras`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from charlm.model import CELLS

__all__ = ["BatchedCells", "key_gradient"]

_MODULES: dict[str, type[nn.LSTM] | type[nn.RNN]] = {"lstm": nn.LSTM, "rnn": nn.RNN}


class BatchedCells(nn.Module):
    """R one-layer `cell` models ("lstm" or "rnn") reading `inputs` values a step,
    `hidden` units each, with a linear head to `classes` logits."""

    def __init__(self, cell: str, models: int, inputs: int, hidden: int, classes: int) -> None:
        super().__init__()
        if cell not in _MODULES:
            raise ValueError(f"cell {cell!r}")
        self.cell, self.models, self.hidden = cell, models, hidden
        gates = CELLS[cell] * hidden
        bound = 1 / math.sqrt(hidden)  # PyTorch's own initialisation of these modules

        def uniform(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.w_in = uniform(models, inputs, gates)  # W_ih^T
        self.w_hh = uniform(models, hidden, gates)  # W_hh^T
        self.b_ih = uniform(models, 1, gates)
        self.b_hh = uniform(models, 1, gates)
        self.head_w = uniform(models, hidden, classes)  # nn.Linear's bound is 1/sqrt(fan_in)
        self.head_b = uniform(models, 1, classes)

    @torch.no_grad()
    def init_keras(self, models: list[int], generator: torch.Generator) -> None:
        """Give `models` Keras's initialisation of its `LSTM`/`SimpleRNN` and `Dense`
        layers: glorot-uniform input and head weights, orthogonal recurrent weights
        (each model's (H, G) matrix with orthonormal rows: for one unit of a simple RNN,
        a weight of +1 or -1), zero biases, and for an LSTM a forget-gate bias of 1
        (`unit_forget_bias=True`)."""
        _, inputs, gates = self.w_in.shape
        H, classes = self.hidden, self.head_w.shape[-1]

        def glorot(fan_in: int, fan_out: int) -> torch.Tensor:
            limit = math.sqrt(6 / (fan_in + fan_out))
            return (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * limit

        for r in models:
            self.w_in[r] = glorot(inputs, gates)
            q, upper = torch.linalg.qr(torch.randn(gates, H, generator=generator))
            self.w_hh[r] = (q * torch.sign(torch.diagonal(upper))).T  # rows orthonormal
            self.b_ih[r] = 0.0
            self.b_hh[r] = 0.0
            if self.cell == "lstm":
                self.b_ih[r, 0, H : 2 * H] = 1.0
            self.head_w[r] = glorot(H, classes)
            self.head_b[r] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (R, B, T, I), each model its own sequences, from zero state; the logits
        after the last step, (R, B, C)."""
        return self.read(self.input_terms(x))

    def input_terms(self, x: torch.Tensor) -> torch.Tensor:
        """Each step's input-side term, (R, B, T, G): x W_ih^T plus the biases that add
        to it."""
        R, B, T, _ = x.shape
        terms = torch.bmm(x.reshape(R, B * T, -1), self.w_in).view(R, B, T, -1)
        return terms + (self.b_ih + self.b_hh).unsqueeze(2)

    def read(self, inputs: torch.Tensor, forget: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Run the cells over input terms (R, B, T, G); the last logits, (R, B, C).
        `forget`, if given, receives an LSTM's mean forget gate of each model at each
        step, (R,)."""
        R, B, _, _ = inputs.shape
        h = inputs.new_zeros(R, B, self.hidden)
        c = inputs.new_zeros(R, B, self.hidden)
        # One view per step, made at once: slicing inside the loop would make backward
        # write a zero gradient of the whole input for every step.
        for x in inputs.unbind(2):
            pre = torch.baddbmm(x, h, self.w_hh)
            if self.cell == "rnn":
                h = torch.tanh(pre)
                continue
            i, f, g, o = pre.chunk(4, dim=-1)
            f = torch.sigmoid(f)
            if forget is not None:
                forget.append(f.detach().mean((1, 2)))
            c = f * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return torch.baddbmm(self.head_b, h, self.head_w)

    def load_module(self, index: int, module: nn.LSTM | nn.RNN) -> None:
        """Copy a one-layer PyTorch module's weights into model `index`; for tests."""
        with torch.no_grad():
            for mine, theirs in (("w_in", "weight_ih_l0"), ("w_hh", "weight_hh_l0")):
                getattr(self, mine)[index] = getattr(module, theirs).T
            for mine, theirs in (("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
                getattr(self, mine)[index, 0] = getattr(module, theirs)

    def export(self, index: int) -> tuple[nn.LSTM | nn.RNN, nn.Linear]:
        """Model `index` as PyTorch modules holding copies of its weights: the recurrent
        layer (`batch_first`) and the head."""
        _, inputs, _ = self.w_in.shape
        module = _MODULES[self.cell](inputs, self.hidden, batch_first=True)
        head = nn.Linear(self.hidden, self.head_w.shape[-1])
        with torch.no_grad():
            for mine, theirs in (("w_in", "weight_ih_l0"), ("w_hh", "weight_hh_l0")):
                getattr(module, theirs).copy_(getattr(self, mine)[index].T)
            for mine, theirs in (("b_ih", "bias_ih_l0"), ("b_hh", "bias_hh_l0")):
                getattr(module, theirs).copy_(getattr(self, mine)[index, 0])
            head.weight.copy_(self.head_w[index].T)
            head.bias.copy_(self.head_b[index, 0])
        return module, head


def key_gradient(model: BatchedCells, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How much of the loss's gradient reaches the first input, per model (R,): the norm
    of d loss / d input at the first step over its norm at the last step, inputs x
    (R, B, T, I). A cell whose gradient vanishes over the sequence shows a ratio near 0."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
    )
    (grad,) = torch.autograd.grad(loss, x)
    first = grad[:, :, 0].flatten(1).norm(dim=1)
    last = grad[:, :, -1].flatten(1).norm(dim=1)
    ratio: torch.Tensor = first / last.clamp_min(1e-30)
    return ratio
