"""What a detector reports (`Finding`), and the facts of a run that detectors read
besides its logged rows (`RunFacts`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from charlm.diagnostics.references import ReferenceLevels

__all__ = ["Finding", "Row", "RunFacts", "findings_block", "finite"]

Row = dict[str, Any]
"""A logged row: {"kind": "train", "step", "loss", ...} or {"kind": "eval", "step", "val_loss"}."""


@dataclass(frozen=True)
class Finding:
    name: str
    step: int
    seen: str
    causes: str
    advice: str
    passed: str | None = None
    """How the run got past it, when it did (the finding no longer holds): shown apart
    from the findings that do."""

    def line(self) -> str:
        """One warning line: what is seen and what to try."""
        return f"{self.name} at step {self.step}: {self.seen}. Try: {self.advice}."

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The finding as a report shows it."""
        out = [
            f"  step {self.step}: {self.name}",
            f"    seen:   {self.seen}",
            f"    likely: {self.causes}",
            f"    try:    {self.advice}",
        ]
        if self.passed:
            out.append(f"    passed: {self.passed}")
        return out

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
                str(data["passed"]) if data.get("passed") else None,
            )
        except (KeyError, TypeError, ValueError, OverflowError):
            return None


def findings_block(findings: list[Finding]) -> list[str]:
    """The findings of a report: those that hold, then those the run got past."""
    holding = [f for f in findings if not f.passed]
    passed = [f for f in findings if f.passed]
    if not holding:
        lines = ["Findings: none; the run looks healthy."]
    else:
        lines = [f"Findings ({len(holding)})"]
        for f in holding:
            lines += f.lines()
    if passed:
        lines += ["", f"Seen and passed ({len(passed)})"]
        for f in passed:
            lines += f.lines()
    return lines


@dataclass(frozen=True)
class RunFacts:
    references: ReferenceLevels | None = None
    vocab_size: int | None = None
    clip: float | None = None
    patience: int | None = None
    """Evaluations without improvement after which the run stops (None or 0: never)."""


def finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
