"""What a detector reports (`Finding`), and the facts of a run that detectors read
besides its logged rows (`RunFacts`), among them what its loss is (`LossKind`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeGuard

from charlm.diagnostics.references import ReferenceLevels

__all__ = ["LOSS_KINDS", "Finding", "LossKind", "RunFacts", "findings_block", "finite"]


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

    @property
    def detector(self) -> str:
        """The rule that fired (the same as `name`)."""
        return self.name

    @property
    def message(self) -> str:
        """The finding in one line (`line`)."""
        return self.line()

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


LossKind = Literal["charlm", "characters", "classes", "unknown"]
LOSS_KINDS: dict[LossKind, str] = {
    "charlm": "a charlm run's per-character cross-entropy, in nats",
    "characters": "a per-character cross-entropy (a corpus or a vocabulary size was given), "
    "in nats",
    "classes": "a cross-entropy of classes (the log has accuracy columns), in nats",
    "unknown": "of a kind not known (no corpus, no vocabulary size, no accuracy column), "
    "read in its own units",
}
"""What a run's loss is, as a report says it. A charlm run's advice names charlm's
flags; any other loop's names what to change in its code. Only a cross-entropy is in
nats, and only a per-character one has the reference levels of a text."""


@dataclass(frozen=True)
class RunFacts:
    references: ReferenceLevels | None = None
    vocab_size: int | None = None
    """The number of classes the loss is a cross-entropy over (characters, symbols)."""
    clip: float | None = None
    patience: int | None = None
    """Evaluations without improvement after which the run stops (None or 0: never)."""
    loss: LossKind = "charlm"
    """What the loss is (see `LOSS_KINDS`)."""

    @property
    def own_loop(self) -> bool:
        """Whether the run is a loop of the user's own, not charlm's trainer."""
        return self.loss != "charlm"

    @property
    def nats(self) -> bool:
        """Whether the loss is a cross-entropy, in nats."""
        return self.loss != "unknown"


def finite(value: object) -> TypeGuard[float]:
    """Whether `value` is a finite number (not None, NaN, infinite or a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
