"""A run's history: its record (`record.RunRecord`: the logged rows so far and the facts
that do not change) with the detectors run over it, and the findings made.
`History.add(row)` records a row and runs every detector that applies to the run, has
what it needs (see `detectors.Rule`) and has not fired yet; each fires at most once.
`History.finish()`, once the last row is in, checks each finding against the rest of the
run (`passed`: how the run got past it) and leaves out a finding that a later one
explains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from charlm.diagnostics.detectors import DETECTORS, Rule
from charlm.diagnostics.findings import Finding
from charlm.diagnostics.record import RunRecord, Series
from charlm.runlog import Row

__all__ = ["History", "Series"]

_COSTLY_GROWTH = 1.02
"""A costly rule runs again once the rows have grown by this factor (and at the end)."""
_COSTLY_EVERY_ROW = 200
"""Up to this many rows, a costly rule runs at every row."""


@dataclass
class History(RunRecord):
    """A run's rows so far, and the findings they produced."""

    findings: list[Finding] = field(default_factory=list)
    _costly_at: int = field(default=0, repr=False)

    def add(self, row: Row) -> list[Finding]:
        """Record a row (see `RunRecord.record`) and return the findings it makes fire."""
        if not self.record(row):
            return []
        costly = len(self.train) <= _COSTLY_EVERY_ROW or (
            len(self.train) >= _COSTLY_GROWTH * self._costly_at
        )
        if costly:
            self._costly_at = len(self.train)
        return self._run(lambda rule: costly or not rule.costly)

    def _run(self, due: Callable[[Rule], bool]) -> list[Finding]:
        fired = {f.name for f in self.findings}
        new = []
        for rule in DETECTORS:
            if rule.name in fired or not rule.applies(self.facts) or rule.missing(self):
                continue
            if not due(rule) or any(name in fired for name in _EXPLAINERS[rule.name]):
                continue
            finding = rule.check(self)
            if finding is not None:
                new.append(finding)
                fired.add(rule.name)
        self.findings.extend(new)
        return new

    def finish(self) -> list[Finding]:
        """The findings once the run is over: costly rules run a last time; each finding
        is checked against the rest of the run (`passed`); a finding that a later one,
        still holding, explains is left out."""
        self._run(lambda rule: rule.costly)
        checked = []
        for f in self.findings:
            rule = _RULES.get(f.name)
            how = (
                rule.passed(self, f) if rule is not None and rule.passed and not f.passed else None
            )
            checked.append(replace(f, passed=how) if how else f)
        holding = {f.name for f in checked if not f.passed}
        explained = {n for f in holding for n in _RULES[f].explains if f in _RULES}
        self.findings = [f for f in checked if f.name not in explained]
        return self.findings

    def not_judged(self) -> list[str]:
        """The rules that apply to this run but could not judge it, each with why
        ("learning_rate_too_low: needs 200 steps; the log ends at step 4")."""
        fired = {f.name for f in self.findings}
        return [
            f"{rule.name}: {why}"
            for rule in DETECTORS
            if rule.name not in fired
            and rule.applies(self.facts)
            and (why := rule.missing(self, listed_only=True))
        ]


_RULES: dict[str, Rule] = {rule.name: rule for rule in DETECTORS}
_EXPLAINERS: dict[str, list[str]] = {
    rule.name: [other.name for other in DETECTORS if rule.name in other.explains]
    for rule in DETECTORS
}
"""For each rule, those whose finding explains its own (it need not fire after them)."""
