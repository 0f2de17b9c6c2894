"""What a detector reports (`Finding`), and the facts of a run that detectors read
besides its logged rows (`RunFacts`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from charlm.diagnostics.references import ReferenceLevels

__all__ = ["Finding", "Row", "RunFacts", "finite"]

Row = dict[str, Any]
"""A logged row: {"kind": "train", "step", "loss", ...} or {"kind": "eval", "step", "val_loss"}."""


@dataclass(frozen=True)
class Finding:
    name: str
    step: int
    seen: str
    causes: str
    advice: str

    def line(self) -> str:
        """One warning line: what is seen and what to try."""
        return f"{self.name} at step {self.step}: {self.seen}. Try: {self.advice}."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Finding | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                str(data["name"]),
                int(data["step"]),
                str(data["seen"]),
                str(data["causes"]),
                str(data["advice"]),
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            return None


@dataclass(frozen=True)
class RunFacts:
    references: ReferenceLevels | None = None
    vocab_size: int | None = None
    clip: float | None = None
    patience: int | None = None
    """Evaluations without improvement after which the run stops (None or 0: never)."""


def finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
