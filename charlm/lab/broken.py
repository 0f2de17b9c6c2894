"""The broken set-ups the lab reproduces. They live here only: none is a training option.

- `SoftmaxOnOutput`: an LSTM whose output, one unit per symbol, goes straight through a
  softmax and is read as the distribution, with no projection. Its distribution cannot
  put more than e / (e + (K - 1)/e) on one of K symbols (`output_cap`: 0.23 for 26, 0.88
  for 2), since an LSTM's outputs lie in (-1, 1). Trained with `cross_entropy`, which
  takes its own log-softmax, those probabilities become the logits of a second softmax,
  and the loss cannot fall below `softmax_head_floor` (3.07 nats for 26 symbols, with
  the outputs at +1 for the right symbol and -1 for the rest; were the outputs
  unbounded, the second softmax alone would hold it at ln(1 + (K - 1)/e), 2.32 nats).
- The loop that never zeroes its gradients is `LoopConfig(zero_grad=False)`
  (charlm/lab/loop.py); the data generator that draws a new task per batch with labels
  that do not match its points is in charlm/lab/functions.py.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "SoftmaxOnOutput",
    "double_softmax_floor",
    "output_cap",
    "probabilities",
    "softmax_head_floor",
]


class SoftmaxOnOutput(nn.Module):
    """Embedding -> `nn.LSTM` with one unit per symbol -> softmax, as its output."""

    outputs_probabilities = True

    def __init__(self, vocab_size: int, embedding_dim: int = 16) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, vocab_size, batch_first=True)

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, (h, c) = self.lstm(self.embedding(ids), state)
        return torch.softmax(out, -1), (h, c)


def softmax_head_floor(symbols: int) -> float:
    """The least cross-entropy `SoftmaxOnOutput` can reach on `symbols` classes: its
    outputs at +1 for the right symbol and -1 for the others, softmaxed, then softmaxed
    again by the loss."""
    best = torch.full((symbols,), -1.0, dtype=torch.float64)
    best[0] = 1.0
    q = torch.softmax(best, 0)
    return float(torch.logsumexp(q, 0) - q[0])


def double_softmax_floor(symbols: int) -> float:
    """The least cross-entropy of a softmax of probabilities on `symbols` classes (one
    at 1, the rest at 0): the floor of a softmax head whose outputs are unbounded."""
    return math.log(1 + (symbols - 1) / math.e)


def output_cap(symbols: int) -> float:
    """The most a softmax of values in [-1, 1] can give one of `symbols` classes."""
    return math.e / (math.e + (symbols - 1) / math.e)


def probabilities(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The model's next-symbol distribution at every position of `ids` (B, T): its output
    itself for a model that outputs probabilities, else the softmax of its logits."""
    with torch.no_grad():
        out, _ = model(ids)
    return out if getattr(model, "outputs_probabilities", False) else torch.softmax(out, -1)
