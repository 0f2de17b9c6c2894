"""What the watcher costs a training loop: time per step with and without it.

    python bench/watch_overhead.py [--blocks 5] [--steps 100] [--no-write]

Three loops, each a plain PyTorch loop as a user would write it (Adam, zero_grad,
backward, step), timed per step:

- "lstm 2 x 256": a character model's shape: `nn.Embedding` (64), a 2-layer `nn.LSTM`
  of 256 units, `nn.Linear` to 65 classes, batches of 32 windows of 64, cross-entropy;
- "post 000": the post's `nn.LSTM` of 100 units and `Linear` on 21 points, in double
  precision, the loss summed over the 21 positions (21 small `Linear` calls a step);
- "lstm 2 x 256, script hooks": the first loop under the hooks `charlm watch SCRIPT`
  adds (every module's forward, every backward and optimizer step).

Each loop runs unwatched and watched (`charlm.watch(model, optimizer)` and
`w.step(loss)` every step) in alternating blocks of `--steps` steps after a warm-up, so
both meet the same machine; the table gives the median time per step of each and their
ratio. One thread, as the per-step cost is what the watcher adds to.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from common import report
from torch import nn

import charlm
from charlm.watcher.script import _Script

Loop = Callable[[], torch.Tensor]


def char_model() -> tuple[nn.Module, torch.optim.Optimizer, Loop]:
    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(65, 64)
            self.lstm = nn.LSTM(64, 256, num_layers=2, batch_first=True)
            self.head = nn.Linear(256, 65)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(self.embedding(x))
            return self.head(out)  # type: ignore[no-any-return]

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randint(65, (32, 64))
    y = torch.randint(65, (32, 64))

    def step() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 65), y.reshape(-1))
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        return loss

    return model, opt, step


def post_000() -> tuple[nn.Module, torch.optim.Optimizer, Loop]:
    torch.manual_seed(0)
    lstm = nn.LSTM(1, 100, batch_first=True).double()
    linear = nn.Linear(100, 1).double()
    model = nn.ModuleList([lstm, linear])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.tensor(np.arange(21) / 20).reshape(1, 21, 1)
    y = torch.tensor(np.arange(2, 23) / 20)
    criterion = nn.MSELoss()

    def step() -> torch.Tensor:
        opt.zero_grad()
        out, _ = lstm(x)
        loss = sum(criterion(linear(out[:, i, :]).reshape(()), y[i]) for i in range(21))
        assert isinstance(loss, torch.Tensor)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        return loss

    return model, opt, step


def timed(step: Loop, steps: int, after: Callable[[torch.Tensor], object]) -> float:
    """Median seconds per step over `steps` steps."""
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        after(step())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    build: Callable[[], tuple[nn.Module, torch.optim.Optimizer, Loop]],
    blocks: int,
    steps: int,
    script: bool = False,
) -> tuple[float, float]:
    """(median s per step unwatched, watched), alternating blocks of one model."""
    model, opt, step = build()
    timed(step, 20, lambda loss: None)  # warm-up
    plain, watched = [], []
    for _ in range(blocks):
        plain.append(timed(step, steps, lambda loss: None))
        w = charlm.watch(None if script else model, None if script else opt, echo=None)
        hooks = _Script(w) if script else None
        if hooks is None:
            watched.append(timed(step, steps, w.step))
        else:
            watched.append(timed(step, steps, lambda loss: None))  # the hooks end steps
            hooks.remove()
        w.close()
    return statistics.median(plain), statistics.median(watched)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for label, build, script in (
        ("lstm 2 x 256, batch 32 x 64", char_model, False),
        ("post 000 (LSTM 100, 21 Linear calls, double)", post_000, False),
        ("lstm 2 x 256, batch 32 x 64, script hooks", char_model, True),
    ):
        plain, watched = measure(build, args.blocks, args.steps, script)
        rows.append(
            f"| {label} | {plain * 1000:.2f} | {watched * 1000:.2f} | {watched / plain:.3f}x |"
        )
        print(rows[-1], flush=True)
    table = "| loop | ms per step, unwatched | watched | ratio |\n|---|---|---|---|\n" + "\n".join(
        rows
    )
    notes = (
        f"Medians of {args.blocks} blocks of {args.steps} steps each, unwatched and watched "
        "blocks alternating on one model; one thread. Watched: `charlm.watch(model, "
        "optimizer)` and `w.step(loss)` every step (gradient hooks on every parameter, the "
        "softmax functions wrapped, per-layer gradient norms at each optimizer step, the "
        "LSTM's gates recomputed every 50 steps); script hooks: what `charlm watch SCRIPT` "
        "adds instead (no model or optimizer named: found through global hooks)."
    )
    report("What the watcher costs a training step", table, notes, write=not args.no_write)


if __name__ == "__main__":
    main()
