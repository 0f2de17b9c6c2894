"""What the watcher measures inside a training loop, through hooks: nothing here decides
anything (that is `rules`), and nothing changes what the loop computes.

- `Gradients`: a hook on every watched parameter notes each gradient as it arrives, and
  whether, at the first arrival after an optimizer step, the parameter still held a
  gradient from before that step (they were not cleared); at each optimizer step, the
  gradient norm of every layer, and how many parameters had a gradient at all.
- `Softmaxes` (in `softmaxes`): every softmax, log-softmax and cross-entropy the loop
  computes while gradients are on.
- `Recurrent`: for each `nn.LSTM` or `nn.GRU`, every `every` steps, its gates over the
  first sequence of the batch (recomputed from its weights, layer by layer), and its
  forget-gate biases.

Gradient checks keep tensors and read them once a step (`collect`), so a GPU is not made
to wait at every parameter.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = [
    "Gradients",
    "LayerGates",
    "Recurrent",
    "Watched",
    "read_scalars",
]


_STACKED = re.compile(r"(?:weight|bias)_(?:ih|hh|hr)_l(\d+)(?:_reverse)?")
"""A parameter of one layer of a stacked `nn.LSTM`, `nn.GRU` or `nn.RNN`: its number."""


@dataclass
class Watched:
    """The parameters watched, by name (`model.lstm.weight_ih_l0`), and each one's layer
    (the module that owns it, by name; for a stacked recurrent module, its layer:
    `lstm.l0`)."""

    names: dict[int, str] = field(default_factory=dict)  # id(param) -> name
    layers: dict[int, str] = field(default_factory=dict)  # id(param) -> layer name
    params: dict[int, torch.Tensor] = field(default_factory=dict)

    def add_module(self, prefix: str, module: nn.Module) -> None:
        for name, p in module.named_parameters():
            if id(p) in self.params:
                continue
            layer, _, own = name.rpartition(".")
            stacked = _STACKED.fullmatch(own)  # a layer of a stacked nn.LSTM, GRU or RNN
            if stacked:
                layer = ".".join(x for x in (layer, f"l{stacked.group(1)}") if x)
            self.params[id(p)] = p
            self.names[id(p)] = f"{prefix}.{name}" if prefix else name
            self.layers[id(p)] = ".".join(x for x in (prefix, layer) if x) or prefix or "model"

    def add_tensor(self, p: torch.Tensor) -> None:
        if id(p) in self.params:
            return
        shape = "x".join(map(str, p.shape)) or "scalar"
        n = len(self.params)
        self.params[id(p)] = p
        self.names[id(p)] = f"tensor {n} ({shape})"
        self.layers[id(p)] = f"tensor {n} ({shape})"


@dataclass
class _Arrival:
    """One parameter's gradients between two optimizer steps."""

    fresh: bool = True  # no gradient has arrived since the last step
    arrived: int = 0  # gradients that arrived, in all


class Gradients:
    """Gradient arrivals and norms of the watched parameters."""

    def __init__(self, watched: Watched) -> None:
        self.watched = watched
        self.arrivals: dict[int, _Arrival] = {}
        self.handles: list[Any] = []
        self.stepped = False  # an optimizer has stepped since gradients last arrived
        self._leftovers: list[torch.Tensor] = []  # at the first arrival after a step
        self.hooked: set[int] = set()
        self.optimized: set[int] = set()
        """The parameters an optimizer holds (its `zero_grad` clears them): once there
        are some, only theirs are checked for leftovers (a parameter no optimizer holds is
        `not_optimized`'s)."""

    def hook(self) -> None:
        """Hook the parameters not hooked yet (call again after adding some)."""
        for pid, p in self.watched.params.items():
            if pid in self.hooked or not p.requires_grad:
                continue
            self.hooked.add(pid)
            self.arrivals[pid] = _Arrival()
            self.handles.append(p.register_hook(self._on_arrival(pid, p)))  # type: ignore[no-untyped-call]

    def _on_arrival(self, pid: int, p: torch.Tensor) -> Callable[[torch.Tensor], None]:
        def note(grad: torch.Tensor) -> None:
            a = self.arrivals[pid]
            a.arrived += 1
            if a.fresh:
                a.fresh = False
                old = p.grad
                if self.optimized and pid not in self.optimized:
                    return
                if self.stepped and old is not None:  # it should have been cleared
                    self._leftovers.append(old.detach().abs().amax())
                elif self.stepped:
                    self._leftovers.append(torch.zeros((), device=grad.device))

        return note

    def after_step(self) -> None:
        """An optimizer step happened: the next gradients should find .grad cleared."""
        self.stepped = True
        for a in self.arrivals.values():
            a.fresh = True

    def collect_leftovers(self) -> tuple[int, int]:
        """(parameters that still held an earlier gradient, parameters checked) since the
        last call."""
        checked = len(self._leftovers)
        if not checked:
            return 0, 0
        held = sum(v > 0 for v in read_scalars(self._leftovers))
        self._leftovers = []
        return held, checked

    def norms(self, params: Iterable[torch.Tensor]) -> tuple[dict[str, float], int, int]:
        """The gradient norm of each layer among `params`, how many of them have a
        gradient, and how many there are."""
        with_grad = [p for p in params if p.grad is not None]
        if not with_grad:
            return {}, 0, 0
        norms = read_scalars(torch._foreach_norm([p.grad.detach() for p in with_grad]))  # type: ignore[union-attr]
        squares: dict[str, float] = {}
        for p, n in zip(with_grad, norms, strict=True):
            layer = self.watched.layers.get(id(p), "other")
            squares[layer] = squares.get(layer, 0.0) + n * n
        nonzero = sum(n > 0 for n in norms)
        return {k: math.sqrt(v) for k, v in squares.items()}, nonzero, len(with_grad)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


def read_scalars(values: Iterable[torch.Tensor]) -> list[float]:
    """Scalar tensors as floats, copied off each device once (not one wait per value)."""
    by_device: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
    for n, v in enumerate(values):
        by_device.setdefault(v.device, []).append((n, v))
    out: dict[int, float] = {}
    for items in by_device.values():
        read = torch.stack([v.float().reshape(()) for _, v in items]).tolist()
        out.update(zip((n for n, _ in items), read, strict=True))
    return [out[n] for n in range(len(out))]


@dataclass
class LayerGates:
    """One recurrent layer's gates over a sequence."""

    layer: str
    kind: str  # "lstm" or "gru"
    length: int  # time steps read
    forget: float | None  # mean forget gate (LSTM); for a GRU, the mean update gate z
    forget_bias: float | None  # mean of the forget gate's two biases (LSTM)
    saturated: float  # share of gate values within 0.01 of their bounds


class Recurrent:
    """Gates of the watched `nn.LSTM` and `nn.GRU` modules, every `every` steps."""

    def __init__(self, every: int = 50) -> None:
        self.every = every
        self.modules: dict[nn.Module, str] = {}
        self.handles: list[Any] = []
        self.latest: dict[str, LayerGates] = {}
        self.due = True  # probe at the next forward pass

    def add(self, name: str, module: nn.Module) -> None:
        if module in self.modules or not isinstance(module, nn.LSTM | nn.GRU):
            return
        self.modules[module] = name
        self.handles.append(module.register_forward_hook(self._on_forward))

    def step(self, step: int) -> None:
        self.due = step % self.every == 0

    def _on_forward(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        if not self.due or not inputs or not isinstance(inputs[0], torch.Tensor):
            return
        if not torch.is_grad_enabled():
            return
        self.due = False
        x = inputs[0].detach()
        assert isinstance(module, nn.LSTM | nn.GRU)
        if x.dim() == 3:
            x = x[0] if module.batch_first else x[:, 0]
        if x.dim() != 2:
            return  # packed or unbatched in an unusual way: skipped
        with torch.no_grad():
            for gates in _gates(module, x[:256].float()):
                self.latest[f"{self.modules[module]}.l{gates.layer}"] = gates

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []


@torch.no_grad()
def _gates(module: nn.LSTM | nn.GRU, x: torch.Tensor) -> Iterator[LayerGates]:
    """Each layer's gates over the sequence `x` (T, input), from zero state."""
    lstm = isinstance(module, nn.LSTM)
    H = module.hidden_size
    for k in range(module.num_layers):
        w_ih = getattr(module, f"weight_ih_l{k}").float()
        w_hh = getattr(module, f"weight_hh_l{k}").float()
        b_ih = getattr(module, f"bias_ih_l{k}", None)
        b_hh = getattr(module, f"bias_hh_l{k}", None)
        b = (b_ih.float() if b_ih is not None else 0) + (b_hh.float() if b_hh is not None else 0)
        h = torch.zeros(H)
        c = torch.zeros(H)
        outs, forgets, saturated, values = [], [], 0, 0
        for t in range(x.shape[0]):
            if lstm:
                z = x[t] @ w_ih.T + h @ w_hh.T + b
                i, f, g, o = z.chunk(4)
                i, f, o, g = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
                c = f * c + i * g
                h = o * torch.tanh(c)
                forgets.append(float(f.mean()))
                for v, low in ((i, 0.0), (f, 0.0), (o, 0.0), (g, -1.0)):
                    saturated += int(((v - low).abs() < 0.01).sum() + ((1 - v).abs() < 0.01).sum())
                    values += v.numel()
            else:
                gi = x[t] @ w_ih.T + (b_ih.float() if b_ih is not None else 0)
                gh = h @ w_hh.T + (b_hh.float() if b_hh is not None else 0)
                r = torch.sigmoid(gi[:H] + gh[:H])
                u = torch.sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
                n = torch.tanh(gi[2 * H :] + r * gh[2 * H :])
                h = (1 - u) * n + u * h
                forgets.append(float(u.mean()))
                for v, low in ((r, 0.0), (u, 0.0), (n, -1.0)):
                    saturated += int(((v - low).abs() < 0.01).sum() + ((1 - v).abs() < 0.01).sum())
                    values += v.numel()
            outs.append(h)
        bias = None
        if lstm and isinstance(b, torch.Tensor):
            bias = float(b[H : 2 * H].mean())
        yield LayerGates(
            layer=str(k),
            kind="lstm" if lstm else "gru",
            length=int(x.shape[0]),
            forget=sum(forgets) / len(forgets) if forgets else None,
            forget_bias=bias,
            saturated=saturated / values if values else 0.0,
        )
        x = torch.stack(outs)
