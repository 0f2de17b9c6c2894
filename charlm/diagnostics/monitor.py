"""The trainer's side of the diagnostics: what it records at each logging step, and the
run's `History` that the detectors read.

`Monitor` counts clipped steps between log rows, says which steps are probed (every
logging step, unless `--signals off`), adds the signals to a log row, hands each row to
the detectors, replays a resumed run's rows so that a finding is not made twice, and
gives the summary entries a checkpoint keeps (`references`, `diagnoses`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from charlm.diagnostics.findings import Finding, RunFacts
from charlm.diagnostics.history import History
from charlm.diagnostics.references import ReferenceLevels
from charlm.runlog import Row, Signals, read_metrics

__all__ = ["Monitor"]


class Monitor:
    def __init__(
        self,
        train_ids: torch.Tensor,
        vocab_size: int,
        clip: float,
        log_interval: int,
        probe: bool,
        patience: int | None = None,
    ) -> None:
        self.references = ReferenceLevels.of_ids(train_ids)
        self.history = History(RunFacts(self.references, vocab_size, clip, patience))
        self.clip = clip
        self.log_interval = log_interval
        self.probe = probe
        self._clipped = [0, 0]  # steps clipped, steps since the last log row

    def probes(self, step: int) -> bool:
        """Whether step `step` (1-based) records the full signals."""
        return self.probe and step % self.log_interval == 0

    def count(self, grad_norm: float) -> None:
        self._clipped[0] += grad_norm > self.clip
        self._clipped[1] += 1

    def signals(
        self,
        grad_norms: dict[str, float] | None,
        update_ratios: dict[str, float] | None,
        gates: Signals | None,
    ) -> Signals:
        """The signals a log row carries: the share of steps clipped since the last row,
        and a probed step's gradient norms, update ratios and gates (`gate_signals`)."""
        done, steps = self._clipped
        self._clipped = [0, 0]
        return dataclasses.replace(
            gates if gates is not None else Signals(),
            clipped=round(done / steps, 4) if steps else 0.0,
            grad_norms=None if grad_norms is None else _rounded(grad_norms),
            update_ratios=None if update_ratios is None else _rounded(update_ratios),
        )

    def add(self, row: Row) -> list[Finding]:
        return self.history.add(row)

    def replay(self, metrics: Path, up_to_step: int) -> None:
        """Feed a resumed run's logged rows (up to its checkpoint's step) to the detectors."""
        if not metrics.is_file():
            return
        for row in read_metrics(metrics):
            if row.step <= up_to_step:
                self.history.add(row)

    def summary(self) -> dict[str, Any]:
        return {
            "references": self.references.to_dict(),
            "diagnoses": [f.to_dict() for f in self.history.findings],
        }


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: float(f"{v:.4g}") for k, v in values.items()}
