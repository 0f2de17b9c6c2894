"""The loss of a model on held-out text, read as whole streams with state carried.

Shared by training (the validation loss at every evaluation) and inference
(`charlm eval`), so that both report the same figure: the mean cross-entropy in nats
per predicted character, each stream read from a zero state with its first character
as context only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from charlm.model import CharRNN, State

__all__ = ["evaluate_streams", "validation_blocks"]

EVAL_CHUNK = 1024
EVAL_GATE_FLOATS = 1 << 23
"""Most gate pre-activations an evaluation chunk computes at once (32 MiB of float32):
without the bound, 100 validation streams of 1,024 steps through a 2 x 256 LSTM held
330 MiB at once."""
_STREAM_CHARS = 4096
_MAX_STREAMS = 32


def evaluate_streams(
    model: CharRNN, blocks: torch.Tensor, chunk: int = EVAL_CHUNK
) -> tuple[float, int]:
    """Mean cross-entropy (nats/char) of reading each row of `blocks` as one stream.

    blocks: (G, N) ids; every row starts from zero state and its first character is
    context only. Returns (mean loss, number of predicted characters).
    """
    was_training = model.training
    model.eval()
    total = 0.0
    count = 0
    state: State | None = None
    x_all, y_all = blocks[:, :-1], blocks[:, 1:]  # (G, N-1)
    # the LSTM projects a whole chunk's inputs at once, (G, t, 4H) floats: bound them
    width = 4 * model.config.hidden_size * max(1, model.config.num_layers)
    chunk = max(16, min(chunk, EVAL_GATE_FLOATS // (blocks.shape[0] * width)))
    try:
        with torch.inference_mode():
            for start in range(0, x_all.shape[1], chunk):
                x = x_all[:, start : start + chunk]
                y = y_all[:, start : start + chunk]
                logits, state = model(x, state)  # (G, t, V)
                total += float(
                    F.cross_entropy(
                        logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
                    )
                )
                count += y.numel()
    finally:
        model.train(was_training)
    return total / max(1, count), count


def validation_blocks(
    blocks: Sequence[np.ndarray], max_chars: int, device: torch.device
) -> torch.Tensor:
    """Held-out blocks of ids as a (G, N) id tensor of equal-length streams, at most
    `max_chars` in all (only that much of each block is read: the blocks may be views of
    a memory-mapped corpus).

    One long block (a tail split) read as one stream would run at batch 1: it is cut
    into up to 32 parallel streams of at least 4,096 characters instead.
    """
    parts = list(blocks)
    if len(parts) == 1 and len(parts[0]) >= 2 * _STREAM_CHARS:
        block = parts[0]
        n = min(_MAX_STREAMS, len(block) // _STREAM_CHARS)
        size = len(block) // n
        parts = [block[i * size : (i + 1) * size] for i in range(n)]
    per_block = max(2, max_chars // len(parts))
    length = min(per_block, *(len(b) for b in parts))
    ids = np.stack([np.asarray(b[:length], dtype=np.int64) for b in parts])
    return torch.from_numpy(ids).to(device)  # (G, N)
