"""The model: character ids -> embedding -> multi-layer recurrent cells -> linear
projection -> logits.

The cell is an LSTM (the default), a GRU or a simple tanh RNN (`ModelConfig.cell`),
each PyTorch's own fused module. Pure math. The output is unnormalised logits; softmax
happens only inside the loss and at inference, never on the cells' tanh-bounded output
itself (a softmax there caps how sure the model can be). Recurrent state is passed in
and returned, never stored on the module, so one model can serve many callers at once
and generation can step one character at a time. No optimiser, files, devices or
printing here.

The state is always a pair (h, c), each (L, B, H) for the LSTM. A GRU or RNN has no cell
state: its c has width 0, (L, B, 0), so that every caller (the trainer's carried state,
resume files, batched decoding) handles one shape of state whatever the cell.

Shape letters: B batch, T time steps, V vocabulary, E embedding, H hidden, L layers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call

from charlm._config import check_choice, check_int, check_number, from_dict, setting
from charlm.slices import Sliced, finish, steps_per_piece

__all__ = [
    "CELLS",
    "MAX_LAYERS",
    "MAX_VOCAB",
    "MAX_WIDTH",
    "CharRNN",
    "ModelConfig",
    "State",
]

State = tuple[torch.Tensor, torch.Tensor]
"""(h, c): h (L, B, H); c (L, B, H) for the LSTM, (L, B, 0) for the GRU and the RNN."""

CELLS = {"lstm": 4, "gru": 3, "rnn": 1}
"""Each cell kind and the number of gate blocks in its weight matrices."""
_MODULES: dict[str, type[nn.LSTM | nn.GRU | nn.RNN]] = {
    "lstm": nn.LSTM,
    "gru": nn.GRU,
    "rnn": nn.RNN,
}
_LAYER_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


MAX_VOCAB = 1_114_112
"""Every Unicode code point: no character vocabulary can be larger."""
MAX_WIDTH = 65_536
"""Largest embedding or hidden size accepted (one 65,536-unit layer is already 68 GB)."""
MAX_LAYERS = 64


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a `CharRNN`; saved in every checkpoint."""

    vocab_size: int
    cell: str = setting("lstm", "recurrent cell: lstm, gru or rnn (a simple tanh RNN)")
    embedding_dim: int = setting(64, "character embedding size")
    hidden_size: int = setting(256, "LSTM units per layer")
    num_layers: int = setting(2, "stacked LSTM layers")
    dropout: float = setting(
        0.0,
        "dropout between LSTM layers and before the output projection, one mask per "
        "stream and window shared by all its time steps",
    )
    weight_drop: float = setting(
        0.0,
        "share of the recurrent (hidden-to-hidden) weights zeroed while training, a new "
        "draw every step (AWD-LSTM's weight drop)",
    )

    def __post_init__(self) -> None:
        check_int("model vocab_size", self.vocab_size, 1, MAX_VOCAB)
        check_choice("model cell", self.cell, tuple(CELLS))
        check_int("model embedding_dim", self.embedding_dim, 1, MAX_WIDTH)
        check_int("model hidden_size", self.hidden_size, 1, MAX_WIDTH)
        check_int("model num_layers", self.num_layers, 1, MAX_LAYERS)
        check_number("model dropout", self.dropout, minimum=0.0, below=1.0)
        check_number("model weight_drop", self.weight_drop, minimum=0.0, below=1.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> ModelConfig:
        return from_dict(cls, data, "model config")

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """The name and shape of every weight of a `CharRNN` with this config, computed
        without building one (a checkpoint's tensors are checked against these before
        anything is allocated). The cells' weights are named after the cell:
        `lstm.weight_ih_l0`, `gru.weight_ih_l0`, ..."""
        V, E, H = self.vocab_size, self.embedding_dim, self.hidden_size
        G, cell = CELLS[self.cell] * H, self.cell
        shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (V, E)}
        for layer in range(self.num_layers):
            shapes[f"{cell}.weight_ih_l{layer}"] = (G, E if layer == 0 else H)
            shapes[f"{cell}.weight_hh_l{layer}"] = (G, H)
            shapes[f"{cell}.bias_ih_l{layer}"] = (G,)
            shapes[f"{cell}.bias_hh_l{layer}"] = (G,)
        shapes["head.weight"] = (V, H)
        shapes["head.bias"] = (V,)
        return shapes

    def num_parameters(self) -> int:
        return sum(math.prod(shape) for shape in self.parameter_shapes().values())


class CharRNN(nn.Module):
    """Embedding -> `nn.LSTM`, `nn.GRU` or `nn.RNN` -> dropout -> linear projection to
    vocabulary logits. The recurrent module is the attribute named after the cell
    (`model.lstm`, `model.gru`, `model.rnn`), and `model.recurrent` whichever it is.

    With `dropout` p > 0, each training forward zeroes a random share p of the units
    that enter every layer above the first and the head, and scales the rest by
    1/(1 - p); each stream draws one mask per layer for the whole window, so a dropped
    unit stays dropped at every time step (variational dropout, Gal and Ghahramani
    2016). The layers then run one fused call each, with the masks applied between them.
    A mask per stream costs B x H draws instead of the B x T x H of a fresh mask at
    every step.

    With `weight_drop` p > 0, each training forward zeroes a random share p of every
    hidden-to-hidden weight matrix and scales the rest by 1/(1 - p) (DropConnect on the
    recurrent weights, as AWD-LSTM regularises), one draw per call shared by all streams
    and time steps. Only the weights change, so the fused LSTM kernel still runs;
    evaluation and inference use the weights as they are.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        recurrent = _MODULES[config.cell](
            input_size=config.embedding_dim,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
        )  # no dropout of its own, which would draw at every time step: `forward` drops units
        self.add_module(config.cell, recurrent)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.reset_parameters()

    @property
    def recurrent(self) -> nn.LSTM | nn.GRU | nn.RNN:
        """The recurrent module, whichever the cell."""
        return cast("nn.LSTM | nn.GRU | nn.RNN", getattr(self, self.config.cell))

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation of every layer.

        Measured on tiny Shakespeare (`python bench/init.py`: 400 steps of Adam, batch
        32, window 64, two seeds), the usual tweaks, a forget-gate bias of 1 and a head
        drawn with std 0.02, each made learning slower: median validation loss 1.80 and
        1.83 nats/char, both together 1.86, against 1.74 with the defaults. The defaults
        also start close to uniform (the initial loss is within 0.2 of ln V).
        """
        self.embedding.reset_parameters()
        self.recurrent.reset_parameters()
        self.head.reset_parameters()

    def initial_state(self, batch_size: int, device: torch.device | str = "cpu") -> State:
        """Zero state: h (L, B, H) and c (L, B, H), or (L, B, 0) without a cell state."""
        L, H = self.config.num_layers, self.config.hidden_size
        dtype = self.head.weight.dtype
        h = torch.zeros(L, batch_size, H, device=device, dtype=dtype)
        c = torch.zeros(L, batch_size, H if self.config.cell == "lstm" else 0, device=device)
        return h, c.to(dtype)

    def _run(
        self,
        x: torch.Tensor,
        state: State | None,
        weights: dict[str, torch.Tensor] | None = None,
        dropout: float = 0.0,
    ) -> tuple[torch.Tensor, State]:
        """The recurrent module over embedded input `x` (B, T, E) from `state`, with its
        own parameters or `weights`, and `dropout` between its layers; its output
        (B, T, H) and the state after it."""
        if dropout > 0 and self.config.num_layers > 1:
            return self._run_layers(x, state, weights, dropout)
        lstm = self.config.cell == "lstm"
        arg: State | torch.Tensor | None = state if lstm or state is None else state[0]
        if weights is None:
            out, new = self.recurrent(x, arg)
        else:
            out, new = functional_call(self.recurrent, weights, (x, arg))
        if lstm:
            return out, (new[0], new[1])
        return out, (new, new.new_zeros(*new.shape[:2], 0))

    def _run_layers(
        self,
        x: torch.Tensor,
        state: State | None,
        weights: dict[str, torch.Tensor] | None,
        p: float,
    ) -> tuple[torch.Tensor, State]:
        """`_run` one layer at a time, each layer's input above the first multiplied by a
        mask of its own drawn once for the window (`_shared_mask`)."""
        params = weights or dict(self.recurrent.named_parameters())
        h0, c0 = state if state is not None else self.initial_state(x.shape[0], x.device)
        hs, cs = [], []
        for layer in range(self.config.num_layers):
            if layer > 0:
                x = x * _shared_mask(x, p)
            w = [params[f"{name}_l{layer}"] for name in _LAYER_WEIGHTS]
            h = h0[layer : layer + 1]
            if self.config.cell == "lstm":
                x, h, c = torch.lstm(
                    x, (h, c0[layer : layer + 1]), w, True, 1, 0.0, True, False, True
                )
                cs.append(c)
            else:
                step = torch.gru if self.config.cell == "gru" else torch.rnn_tanh
                x, h = step(x, h, w, True, 1, 0.0, True, False, True)
            hs.append(h)
        h_n = torch.cat(hs)
        return x, (h_n, torch.cat(cs) if cs else h_n.new_zeros(*h_n.shape[:2], 0))

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Logits for the next character at every position.

        ids: (B, T) int64. state: (h, c), each (L, B, H), or None for zero state.
        Returns logits (B, T, V) and the state after the last position.
        """
        x = self.embedding(ids)  # (B, T, E)
        dropped = self.training and self.config.weight_drop > 0
        p = self.config.dropout if self.training else 0.0
        out, new_state = self._run(x, state, self._dropped_weights() if dropped else None, p)
        if p > 0:
            out = out * _shared_mask(out, p)
        logits = self.head(out)  # (B, T, V)
        return logits, new_state

    def _dropped_weights(self) -> dict[str, torch.Tensor]:
        """The cells' parameters with weight drop applied to each `weight_hh`."""
        p = self.config.weight_drop
        weights: dict[str, torch.Tensor] = dict(self.recurrent.named_parameters())
        for layer in range(self.config.num_layers):
            name = f"weight_hh_l{layer}"
            weights[name] = nn.functional.dropout(weights[name], p, training=True)
        return weights

    def read_batch(self, sequences: list[torch.Tensor]) -> tuple[torch.Tensor, State]:
        """Read texts of different lengths together, each from zero state.

        sequences: B tensors of ids, each (T_b,) with T_b >= 1. Returns the logits after
        each one's last character (B, V) and each one's state there, (L, B, H) each.
        The texts are sorted longest first and the cells run once per distinct length,
        over the rows still reading, carrying state: no padding is ever read, and every
        call is a plain fused pass (the fastest kernel on the CPU).
        """
        return finish(self.read_batch_pieces(sequences, steps=None))

    def read_batch_pieces(
        self, sequences: list[torch.Tensor], steps: int | None = 0
    ) -> Sliced[tuple[torch.Tensor, State]]:
        """`read_batch` in pieces (`charlm.slices`) of at most `steps` time
        steps (0: as many as make about `PIECE` characters of the rows still reading;
        None: one pass per distinct length, and no yield). Call it under inference mode
        or not, as `read_batch`: each piece keeps the mode it was called in."""
        B = len(sequences)
        order = sorted(range(B), key=lambda b: -sequences[b].numel())
        lengths = [sequences[b].numel() for b in order]
        ids = nn.utils.rnn.pad_sequence([sequences[b] for b in order], batch_first=True)
        x = self.embedding(ids)  # (B, T, E)
        h, c = self.initial_state(B, ids.device)
        start = 0
        for end in sorted(set(lengths)):
            n = sum(1 for t in lengths if t >= end)  # the first n rows are still reading
            span = end - start if steps is None else steps or steps_per_piece(n)
            for t0 in range(start, end, span):
                t1 = min(end, t0 + span)
                _, (h_n, c_n) = self._run(
                    x[:n, t0:t1], (h[:, :n].contiguous(), c[:, :n].contiguous())
                )
                h[:, :n], c[:, :n] = h_n, c_n
                if steps is not None:
                    yield
            start = end
        back = torch.empty(B, dtype=torch.int64, device=ids.device)
        back[torch.tensor(order, device=ids.device)] = torch.arange(B, device=ids.device)
        h, c = h[:, back], c[:, back]
        return self.head(h[-1]), (h, c)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _shared_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """A dropout mask for `x` (B, T, F), (B, 1, F): each stream keeps or drops a unit
    for all T steps, with probability 1 - p of keeping it, kept units scaled by
    1/(1 - p)."""
    keep = 1.0 - p
    return x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(keep).div_(keep)
