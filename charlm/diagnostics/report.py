"""A run's diagnosis: what it learned against the reference levels, which detectors fired
and when, the gradient and gate picture at its last logged step, and the advice.

`diagnose_checkpoint(directory)` reads a charlm run (its summary and metrics.jsonl);
`diagnose_log(path, corpus_text)` reads a plain log of any training loop (see `logs`),
with the reference levels when the corpus is given; a log too long to hold is read
thinned, and the diagnosis says so. Both replay the rows through the
same detectors the trainer runs. `Diagnosis.to_dict()` is the JSON form (`--json`, the
service); `Diagnosis.render()` the text a person reads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charlm import checkpoint
from charlm.diagnostics.findings import Finding, RunFacts, findings_block, finite
from charlm.diagnostics.history import History
from charlm.diagnostics.logs import MAX_TRAIN_ROWS, open_log
from charlm.diagnostics.references import ReferenceLevels
from charlm.metrics import METRICS_FILE, read_metrics

__all__ = ["Diagnosis", "diagnose_checkpoint", "diagnose_log", "diagnose_rows"]

_BITS = 1 / math.log(2)


@dataclass(frozen=True)
class Diagnosis:
    source: str
    steps: int
    references: ReferenceLevels | None
    train_loss: float | None
    """Mean of the last 3 logged training losses."""
    val_loss: float | None
    best_val_loss: float | None
    best_step: int | None
    findings: list[Finding] = field(default_factory=list)
    signals: dict[str, Any] = field(default_factory=dict)
    """The last logged training row's signals (gradient norms, update ratios, gates)."""
    read_every: int = 1
    """How many logged training rows each row read stands for (more than 1: a long log,
    thinned; see `logs`)."""

    @property
    def healthy(self) -> bool:
        return not any(not f.passed for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "steps": self.steps,
            "healthy": self.healthy,
            "references": self.references.to_dict() if self.references else None,
            "train_loss": _finite_or_none(self.train_loss),
            "val_loss": _finite_or_none(self.val_loss),
            "best_val_loss": _finite_or_none(self.best_val_loss),
            "best_step": self.best_step,
            "findings": [f.to_dict() for f in self.findings],
            "signals": self.signals,
            "read_every": self.read_every,
        }

    def render(self) -> str:
        lines = [f"Diagnosis of {self.source} ({self.steps:,} steps)"]
        if self.read_every > 1:
            k = self.read_every
            lines.append(
                f"  read at every {_ordinal(k)} logged step: each {k:,} training rows were "
                "merged into one (their mean loss, largest gradient norm, last step and "
                f"learning rate) to hold at most {MAX_TRAIN_ROWS:,}"
            )
        lines += ["", "What was learned"]
        ref = self.references
        if self.train_loss is not None:
            lines.append(f"  training loss     {_nb(self.train_loss)} (mean of the last 3 logged)")
        if self.best_val_loss is not None:
            lines.append(
                f"  validation loss   {_nb(self.best_val_loss)} at best (step {self.best_step})"
                + (f", {_nb(self.val_loss)} at the end" if self.val_loss is not None else "")
            )
        if ref is not None:
            reached = self.best_val_loss if self.best_val_loss is not None else self.train_loss
            lines.append(f"  unigram level     {_nb(ref.unigram)}: character frequencies only")
            lines.append(f"  repeat level      {_nb(ref.repeat)}: the last character again")
            if reached is not None:
                below = ref.beaten_by(reached)
                lines.append(
                    f"  {'beaten by' if below > 0 else 'NOT beaten: above by'} "
                    f"{abs(below):.4f} nats ({abs(below) * _BITS:.3f} bits) per character"
                )
            if ref.determined_after is not None:
                k = ref.determined_after
                before = "the character" if k == 1 else f"the {k} characters"
                lines.append(
                    f"  {before} before each one decide{'s' if k == 1 else ''} it: a working "
                    "model gets close to 0"
                )
        else:
            lines.append("  (reference levels need the corpus: --corpus FILE)")
        lines += ["", *findings_block(self.findings)]
        picture = _picture(self.signals)
        if picture:
            lines += ["", f"Gradients and gates at step {self.signals.get('step')}", *picture]
        return "\n".join(lines)


def diagnose_rows(
    rows: Iterable[dict[str, Any]], facts: RunFacts, source: str, *, read_every: int = 1
) -> Diagnosis:
    """Replay `rows` (metrics rows; `read_every`: how many logged rows each stands for)
    through the detectors."""
    history = History(facts)
    for row in rows:
        history.add(row)
    evals = history.evals
    best = min(evals, key=lambda r: float(r["val_loss"])) if evals else None
    last_train = history.train[-1] if history.train else {}
    signal_keys = ("step", "grad_norm", "clipped", "grad_norms", "update_ratios", "gates", "cell")
    return Diagnosis(
        source=source,
        steps=history.step,
        references=facts.references,
        train_loss=history.recent_loss() if history.train else None,
        val_loss=float(evals[-1]["val_loss"]) if evals else None,
        best_val_loss=float(best["val_loss"]) if best else None,
        best_step=int(best["step"]) if best else None,
        findings=list(history.findings),
        signals={k: last_train[k] for k in signal_keys if k in last_train},
        read_every=read_every,
    )


def diagnose_checkpoint(directory: str | Path, corpus_text: str | None = None) -> Diagnosis:
    """The diagnosis of the charlm run in `directory` (a checkpoint with its log). The
    reference levels are those the run saved; `corpus_text` gives them for a checkpoint
    written before they were saved."""
    directory = Path(directory)
    ckpt = checkpoint.load(directory)
    metrics = directory / METRICS_FILE
    rows = read_metrics(metrics) if metrics.is_file() else []
    clip = ckpt.train_config.get("clip") if isinstance(ckpt.train_config, dict) else None
    references = ReferenceLevels.from_dict(ckpt.summary.get("references"))
    if references is None and corpus_text:
        references = ReferenceLevels.of_text(corpus_text)
    patience = ckpt.train_config.get("patience") if isinstance(ckpt.train_config, dict) else None
    facts = RunFacts(
        references=references,
        vocab_size=ckpt.model_config.vocab_size,
        clip=float(clip) if isinstance(clip, int | float) else None,
        patience=patience if isinstance(patience, int) else None,
    )
    return diagnose_rows(rows, facts, str(directory))


def diagnose_log(path: str | Path, corpus_text: str | None = None) -> Diagnosis:
    """The diagnosis of a plain log (CSV or JSON Lines: step, loss, and optionally
    val_loss, grad_norm, lr) of any training loop; `corpus_text`, the text it trained
    on, gives the reference levels and the vocabulary size. A log of more than
    `logs.MAX_TRAIN_ROWS` lines is read thinned to that many training rows."""
    facts = RunFacts()
    if corpus_text:
        facts = RunFacts(ReferenceLevels.of_text(corpus_text), len(set(corpus_text)))
    with open_log(path) as log:
        return diagnose_rows(log.rows(), facts, str(path), read_every=log.every)


def _ordinal(n: int) -> str:
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _nb(nats: float | None) -> str:
    if nats is None or not math.isfinite(nats):
        return str(nats)
    if nats < 1e-3:
        return f"{nats:.2e} nats ({nats * _BITS:.2e} bits)"
    return f"{nats:.4f} nats ({nats * _BITS:.3f} bits)"


def _picture(signals: dict[str, Any]) -> list[str]:
    """The signals of a log row as text; values that are not numbers (a hand-edited or
    foreign log) show as '?'."""
    lines = []
    if finite(signals.get("grad_norm")):
        share = f", {_f(signals.get('clipped'), '.0%')} of steps clipped"
        lines.append(f"  gradient norm before clipping {_f(signals['grad_norm'], '.3g')}{share}")
    for key, label in (("grad_norms", "per layer"), ("update_ratios", "update/weight")):
        values = signals.get(key)
        if isinstance(values, dict) and values:
            shown = ", ".join(f"{k} {_f(v, '.2g')}" for k, v in values.items())
            lines.append(f"  {label:<13} {shown}")
    gates, cells = signals.get("gates"), signals.get("cell")
    if isinstance(gates, dict):
        for layer, per_gate in gates.items():
            if not isinstance(per_gate, dict):
                continue
            parts = [
                f"{g} {_f(v.get('mean'), '+.2f')} ({_f(v.get('saturated'), '.0%')} saturated)"
                for g, v in per_gate.items()
                if isinstance(v, dict)
            ]
            cell = cells.get(layer) if isinstance(cells, dict) else None
            tail = f"; mean |c| {_f(cell, '.2f')}" if cell is not None else ""
            lines.append(f"  gates {layer:<7} " + ", ".join(parts) + tail)
    return lines


def _f(value: object, spec: str) -> str:
    return format(value, spec) if finite(value) else "?"
