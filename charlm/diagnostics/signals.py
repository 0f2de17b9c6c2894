"""What a training step shows about the health of the run, measured cheaply.

`gradient_norms(model)` (call after backward, before clipping): the gradient norm of each
parameter group: `embedding`, `lstm.l0` ... `lstm.l{L-1}` (both weight matrices and
biases of a layer; `gru.l0` ... or `rnn.l0` ... for the other cells) and `head`.
`update_ratios(before, model)` (after the optimiser step): for each group, the norm of
the step's change over the norm of the weights, the figure whose healthy range is about
1e-4 to 1e-2 per step. `gate_signals(model, ids, state)`: the LSTM's gates on the first
`PROBE_STREAMS` streams of a batch, recomputed step by step in float32 from the model's
weights (the fused kernel keeps no gates): per layer and gate (input, forget, cell,
output) the mean activation and the share of saturated units, and the mean magnitude of
the cell state. GRU and RNN models report no gates.

These run at the trainer's logging interval, not every step; `bench/diagnostics.py`
measures their cost.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from charlm.model import CharRNN, State
from charlm.runlog import GateStats, Signals

__all__ = [
    "GATES",
    "PROBE_STREAMS",
    "SATURATED",
    "gate_signals",
    "gradient_norms",
    "groups",
    "snapshot",
    "update_ratios",
]

GATES = ("input", "forget", "cell", "output")
"""In the order of `nn.LSTM`'s weight rows."""
SATURATED = 4.0
"""A unit is saturated when its gate's pre-activation is beyond ±4: a sigmoid then
passes under 2% of its gradient, a tanh under 0.2%."""
PROBE_STREAMS = 8


def groups(model: CharRNN) -> Iterator[tuple[str, list[torch.Tensor]]]:
    """The parameter groups, input side first."""
    yield "embedding", [model.embedding.weight]
    cell = model.config.cell
    for layer in range(model.config.num_layers):
        yield (
            f"{cell}.l{layer}",
            [p for n, p in model.recurrent.named_parameters() if n.endswith(f"_l{layer}")],
        )
    yield "head", list(model.head.parameters())


def _norm(tensors: list[torch.Tensor]) -> float:
    return float(torch.stack([t.detach().float().norm() for t in tensors]).norm())


def gradient_norms(model: CharRNN) -> dict[str, float]:
    """Each group's gradient norm (0 for a group without gradients)."""
    norms = {}
    for name, params in groups(model):
        grads = [p.grad for p in params if p.grad is not None]
        norms[name] = _norm(grads) if grads else 0.0
    return norms


def snapshot(model: CharRNN) -> dict[str, list[torch.Tensor]]:
    """A copy of every group's weights, for `update_ratios` after the step."""
    return {name: [p.detach().clone() for p in params] for name, params in groups(model)}


def update_ratios(before: dict[str, list[torch.Tensor]], model: CharRNN) -> dict[str, float]:
    """Each group's ||change|| / ||weights before|| over one optimiser step."""
    ratios = {}
    for name, params in groups(model):
        old = before[name]
        change = _norm([p.detach() - o for p, o in zip(params, old, strict=True)])
        ratios[name] = change / max(_norm(old), 1e-12)
    return ratios


@torch.no_grad()
def gate_signals(model: CharRNN, ids: torch.Tensor, state: State | None) -> Signals:
    """Gates and cell state on the first streams of `ids` (B, T) read from `state`.

    Returns the `Signals` `gates` ({"l0": {"input": GateStats(mean, saturated), ...},
    ...}) and `cell` ({"l0": mean |c|, ...}), averaged over the streams and time steps
    read; neither for a GRU or RNN.
    """
    cfg = model.config
    if cfg.cell != "lstm":
        return Signals()
    k = min(PROBE_STREAMS, ids.shape[0])
    x = model.embedding.weight.detach().float()[ids[:k]]  # (k, T, E)
    if state is None:
        h = [torch.zeros(k, cfg.hidden_size) for _ in range(cfg.num_layers)]
        c = [torch.zeros(k, cfg.hidden_size) for _ in range(cfg.num_layers)]
    else:
        h = [state[0][layer, :k].float() for layer in range(cfg.num_layers)]
        c = [state[1][layer, :k].float() for layer in range(cfg.num_layers)]
    gates: dict[str, dict[str, GateStats]] = {}
    cells: dict[str, float] = {}
    inp = x
    H = cfg.hidden_size
    for layer in range(cfg.num_layers):
        lstm = model.recurrent
        w_ih = getattr(lstm, f"weight_ih_l{layer}").detach().float()
        w_hh_t = getattr(lstm, f"weight_hh_l{layer}").detach().float().T
        b = getattr(lstm, f"bias_ih_l{layer}") + getattr(lstm, f"bias_hh_l{layer}")
        pre_in = inp @ w_ih.T + b.detach().float()  # (k, T, 4H): the input side, at once
        pre, outs, cs = [], [], []
        hl, cl = h[layer], c[layer]
        for t in range(ids.shape[1]):
            z = torch.addmm(pre_in[:, t], hl, w_hh_t)  # (k, 4H): gates i, f, g, o
            sig = torch.sigmoid(z)
            cl = torch.addcmul(sig[:, H : 2 * H] * cl, sig[:, :H], torch.tanh(z[:, 2 * H : 3 * H]))
            hl = sig[:, 3 * H :] * torch.tanh(cl)
            pre.append(z)
            outs.append(hl)
            cs.append(cl)
        z_all = torch.stack(pre, 1).view(k, -1, 4, H)  # (k, T, gate, H)
        act = torch.sigmoid(z_all)
        act[:, :, 2] = torch.tanh(z_all[:, :, 2])
        means = act.mean(dim=(0, 1, 3)).tolist()
        saturated = (z_all.abs() > SATURATED).float().mean(dim=(0, 1, 3)).tolist()
        gates[f"l{layer}"] = {
            gate: GateStats(round(m, 4), round(sat, 4))
            for gate, m, sat in zip(GATES, means, saturated, strict=True)
        }
        cells[f"l{layer}"] = round(float(torch.stack(cs, 1).abs().mean()), 4)
        inp = torch.stack(outs, 1)  # (k, T, H): the next layer's input
    return Signals(gates=gates, cell=cells)
