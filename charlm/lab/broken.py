"""The broken set-ups the lab reproduces. They live here only: none is a training option.

- `SoftmaxOnOutput`: an LSTM with one unit per symbol whose output is read as the
  logits, so that the softmax is taken straight of the LSTM's output, with no projection
  (post 003). The output h = o * tanh(c) lies in (-1, 1), so the softmax cannot give one
  of K symbols more than `charlm.diagnostics.references.bounded_softmax_cap`, and its
  cross-entropy cannot fall below `bounded_softmax_floor`.
- The loop that never zeroes its gradients and the one that never calls backward are
  `LoopConfig(zero_grad=False)` and `LoopConfig(backward=False)` (charlm/lab/loop.py).
- The function-recognition data whose k and b are redrawn for every sequence, and whose
  labels are drawn apart from the points, are in charlm/lab/functions.py; the validation
  split taken from the tail of data ordered by class is in charlm/lab/latching.py.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SoftmaxOnOutput"]


class SoftmaxOnOutput(nn.Module):
    """Embedding -> `nn.LSTM` with one unit per symbol, whose output is the logits."""

    def __init__(self, vocab_size: int, embedding_dim: int = 16) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, vocab_size, batch_first=True)

    def forward(
        self, ids: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """ids (B, T) -> the LSTM's output (B, T, V), each value in (-1, 1), and its state."""
        out, (h, c) = self.lstm(self.embedding(ids), state)
        return out, (h, c)
