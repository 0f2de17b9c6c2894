"""The logs the loops in this folder write, as their authors might: `step,loss` (CSV) or
one JSON object a line (JSONL), every `every` steps, with `--rich` also the gradient
norm, the learning rate and the validation loss where the loop has them.

Every loop takes the same flags, added by `flags()`:

    --fixed             the loop with its post's fix
    --watch             the two lines of charlm's watcher added to the loop (`charlm.watch`)
    --log FILE[@N]      write a training log there, a row every N steps (default 1):
                        CSV for .csv, JSON Lines for .jsonl; a name with `.rich.` in it
                        also logs the gradient norm, the learning rate and the validation
                        loss (where the loop has one). Several --log flags: several logs.
    --steps N           how many steps (each loop has its own default)
    --seed N            the random seed (default 0)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import torch


def flags(description: str, steps: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fixed", action="store_true")
    parser.add_argument("--watch", action="store_true")
    parser.add_argument("--log", action="append", default=[])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def grad_norm(params: Iterable[torch.Tensor]) -> float:
    """The norm of all the gradients together (0 where there is none)."""
    total = 0.0
    for p in params:
        if p.grad is not None:
            total += float(p.grad.detach().pow(2).sum())
    return math.sqrt(total)


class Logs:
    """The logs asked for by `--log` flags (see above)."""

    def __init__(self, specs: list[str]) -> None:
        self.logs = []
        for spec in specs:
            path, _, every = spec.partition("@")
            self.logs.append(Log(Path(path), int(every or 1), ".rich." in Path(path).name))

    def write(self, step: int, loss: float, **extra: Any) -> None:
        for log in self.logs:
            log.write(step, loss, **extra)

    def close(self) -> None:
        for log in self.logs:
            log.close()


class Log:
    """One training log at `path`, a row every `every` steps."""

    def __init__(self, path: Path, every: int, rich: bool) -> None:
        self.every = every
        self.file: IO[str] | None = open(path, "w", newline="")  # noqa: SIM115
        self.jsonl = path.suffix == ".jsonl"
        self.columns = ["step", "loss", *(["grad_norm", "lr", "val_loss"] if rich else [])]
        self.csv = None
        if self.file is not None and not self.jsonl:
            self.csv = csv.writer(self.file)
            self.csv.writerow(self.columns)

    def write(self, step: int, loss: float, **extra: Any) -> None:
        """The row of `step`, if it is one to log; `extra` beyond the columns is dropped."""
        if self.file is None or step % self.every:
            return
        row = {"step": step, "loss": loss, **extra}
        if self.jsonl:
            values = {k: row[k] for k in self.columns if row.get(k) is not None}
            self.file.write(json.dumps(values) + "\n")
        else:
            assert self.csv is not None
            self.csv.writerow(["" if row.get(k) is None else row[k] for k in self.columns])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
