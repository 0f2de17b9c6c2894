"""A run's diagnosis: what it learned against the reference levels, which detectors fired
and when (and which the run got past), which could not judge it and why, the gradient and
gate picture at its last logged step, and the advice.

`diagnose_checkpoint(directory)` reads a charlm run (its summary and metrics.jsonl);
`diagnose_log(path, corpus_text, vocab_size)` reads the log of any training loop (see
`logs` for the formats), with the reference levels when the corpus is given; a log too
long to hold is read thinned, and the diagnosis says so. Both replay the rows through the
same detectors the trainer runs, then check each finding against the rest of the run
(`History.finish`). What the loss is (`RunFacts.loss`) is decided once, in `loss_kind`.
The findings `charlm.watch` made inside a loop, read from its log, are reported as it
made them, marked as its own, beside those read from the curve. `Diagnosis.to_dict()` is
the JSON form (`--json`, the service); `Diagnosis.render()` the text a person reads.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from charlm import checkpoint
from charlm.diagnostics.findings import (
    LOSS_KINDS,
    Finding,
    LossKind,
    RunFacts,
    findings_block,
    finite,
)
from charlm.diagnostics.history import History
from charlm.diagnostics.logs import MAX_TRAIN_ROWS, ReadNotes, open_log
from charlm.diagnostics.references import (
    RECURRENCE,
    ReferenceLevels,
    judges_determinism,
)
from charlm.errors import InputError
from charlm.runlog import (
    METRICS_FILE,
    FindingRow,
    NonfiniteRow,
    ReferenceRow,
    Row,
    TrainRow,
    json_safe,
    read_metrics,
)

__all__ = ["Diagnosis", "diagnose_checkpoint", "diagnose_log", "diagnose_rows", "loss_kind"]

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
    last_train: TrainRow | None = None
    """The last logged training row, whose signals (gradient norms, update ratios,
    gates) the report shows."""
    read_every: int = 1
    """How many logged training rows each row read stands for (more than 1: a long log,
    thinned; see `logs`)."""
    logged: int = 0
    """The training rows read."""
    loss: LossKind = "charlm"
    """What the loss is (`RunFacts.loss`)."""
    train_accuracy: float | None = None
    """The last logged training accuracy."""
    val_accuracy: float | None = None
    """The last logged validation accuracy."""
    watcher: list[Finding] = field(default_factory=list)
    """The findings `charlm.watch` made inside the loop, as it made them (its log)."""
    not_judged: list[str] = field(default_factory=list)
    """The rules that could not judge the run, each with why."""
    notes: list[str] = field(default_factory=list)
    """How the log was read, and what limits the reading (a corpus too short)."""
    epochs: int | None = None
    """The epochs of a log whose steps are epochs (a Keras history), else None."""

    @property
    def healthy(self) -> bool:
        return not any(not f.passed for f in [*self.findings, *self.watcher])

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
            "findings": [f.to_dict() for f in self.findings if not f.passed],
            "recovered": [f.to_dict() for f in self.findings if f.passed],
            "signals": _signals(self.last_train),
            "read_every": self.read_every,
            "logged": self.logged,
            "epochs": self.epochs,
            "loss": self.loss,
            "train_accuracy": _finite_or_none(self.train_accuracy),
            "val_accuracy": _finite_or_none(self.val_accuracy),
            "watcher_findings": [f.to_dict() for f in self.watcher],
            "not_judged": self.not_judged,
            "notes": self.notes,
        }

    def render(self) -> str:
        size = f"{self.epochs:,} epochs" if self.epochs else f"{self.steps:,} steps"
        lines = [f"Diagnosis of {self.source} ({size})"]
        if self.read_every > 1:
            k = self.read_every
            lines.append(
                f"  read at every {_ordinal(k)} logged step: each {k:,} training rows were "
                "merged into one (their mean loss, largest gradient norm, last step and "
                f"learning rate) to hold at most {MAX_TRAIN_ROWS:,}"
            )
        lines += [f"  {note}" for note in self.notes]
        if self.loss != "charlm":
            lines.append(f"  the loss: {LOSS_KINDS[self.loss]}")
        lines += ["", "What was learned"]
        value = _nb if self.loss != "unknown" else _plain
        ref = self.references
        if self.train_loss is not None:
            lines.append(
                f"  training loss     {value(self.train_loss)} (mean of the last 3 logged)"
            )
        if self.train_accuracy is not None:
            lines.append(f"  training accuracy {self.train_accuracy:.4f} (the last logged)")
        if self.best_val_loss is not None:
            lines.append(
                f"  validation loss   {value(self.best_val_loss)} at best (step {self.best_step})"
                + (f", {value(self.val_loss)} at the end" if self.val_loss is not None else "")
            )
        if self.val_accuracy is not None:
            lines.append(f"  validation accuracy {self.val_accuracy:.4f} (the last logged)")
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
        elif self.loss in ("charlm", "characters"):
            lines.append("  (reference levels need the corpus: --corpus FILE)")
        lines += ["", *findings_block([f for f in self.findings if not f.passed])]
        recovered = [f for f in self.findings if f.passed]
        if recovered:  # read after the fact, a transient the run got past is no finding
            lines += ["", "Seen early, recovered later (not findings)"]
            lines += [f"  step {f.step}: {f.name}; {f.passed}" for f in recovered]
        if self.watcher:
            lines += ["", f"Found by charlm.watch inside the loop ({len(self.watcher)})"]
            for f in self.watcher:
                lines += f.lines()
        if self.not_judged:
            lines += ["", "Not judged (what each rule needs and the log lacks)"]
            lines += [f"  {line}" for line in self.not_judged]
        picture = _picture(self.last_train) if self.last_train is not None else []
        if picture and self.last_train is not None:
            lines += ["", f"Gradients and gates at step {self.last_train.step}", *picture]
        return "\n".join(lines)


def diagnose_rows(
    rows: Iterable[Row],
    facts: RunFacts,
    source: str,
    *,
    read_every: int = 1,
    notes: list[str] | None = None,
) -> Diagnosis:
    """Replay `rows` (metrics rows; `read_every`: how many logged rows each stands for)
    through the detectors, then check the findings against the whole run. Rows of the
    watcher's findings are kept as they are (the last of each name)."""
    history = History(facts)
    watcher: dict[str, Finding] = {}
    for row in rows:
        if isinstance(row, FindingRow):
            watcher[row.finding.name] = row.finding
        else:
            history.add(row)
    findings = history.finish()
    evals = [(r.step, r.val_loss) for r in history.evals if finite(r.val_loss)]
    best = min(evals, key=lambda e: e[1]) if evals else None
    accuracies = [r.val_accuracy for r in history.evals if finite(r.val_accuracy)]
    return Diagnosis(
        source=source,
        steps=history.step,
        references=facts.references,
        train_loss=history.recent_loss() if history.train else None,
        val_loss=evals[-1][1] if evals else None,
        best_val_loss=best[1] if best else None,
        best_step=best[0] if best else None,
        findings=list(findings),
        last_train=history.train[-1] if history.train else None,
        read_every=read_every,
        logged=len(history.train),
        loss=facts.loss,
        train_accuracy=history.accuracies.values[-1] if len(history.accuracies) else None,
        val_accuracy=accuracies[-1] if accuracies else None,
        watcher=list(watcher.values()),
        not_judged=history.not_judged(),
        notes=list(notes or []),
    )


def diagnose_checkpoint(directory: str | Path, corpus_text: str | None = None) -> Diagnosis:
    """The diagnosis of the charlm run in `directory` (a checkpoint with its log). The
    reference levels are those the run saved; `corpus_text` gives them for a checkpoint
    written before they were saved."""
    directory = Path(directory)
    ckpt = checkpoint.load(directory)
    metrics = directory / METRICS_FILE
    rows = read_metrics(metrics) if metrics.is_file() else []
    references = ReferenceLevels.from_dict(ckpt.summary.get("references"))
    if references is None and corpus_text:
        references = ReferenceLevels.of_text(corpus_text)
    facts = RunFacts(
        references=references,
        vocab_size=ckpt.model_config.vocab_size,
        clip=ckpt.train_config.clip,
        patience=ckpt.train_config.patience,
    )
    return diagnose_rows(rows, facts, str(directory))


def diagnose_log(
    path: str | Path, corpus_text: str | None = None, vocab_size: int | None = None
) -> Diagnosis:
    """The diagnosis of the log of any training loop (see `logs` for what is read);
    `corpus_text`, the text it trained on, gives the reference levels and the vocabulary
    size; `vocab_size` alone the number of classes its cross-entropy is over. A log of
    more than `logs.MAX_TRAIN_ROWS` lines is read thinned to that many training rows."""
    if vocab_size is not None and vocab_size < 2:
        raise InputError(f"--vocab-size must be 2 or more, got {vocab_size}")
    notes = []
    if corpus_text:
        chars = len(set(corpus_text))
        if vocab_size is not None and vocab_size != chars:
            raise InputError(
                f"--vocab-size is {vocab_size} but the corpus has {chars} different characters"
            )
        if not judges_determinism(corpus_text):
            notes.append(
                f"the corpus ({len(corpus_text):,} characters) is too short to tell whether a "
                f"short context decides each character ({RECURRENCE} of each of its {chars} "
                f"characters, {RECURRENCE * chars + 1:,} in all, are needed): "
                "plateau_on_determined_text cannot judge the run"
            )
    with open_log(path) as log:
        rows = log.rows()
        head = []  # the rows up to the first training loss: enough to tell what the loss is
        for row in rows:
            head.append(row)
            if isinstance(row, TrainRow | NonfiniteRow):
                break
        references = next((r.references for r in head if isinstance(r, ReferenceRow)), None)
        kind = loss_kind(log.read, references is not None, corpus_text, vocab_size)
        if corpus_text:
            references = ReferenceLevels.of_text(corpus_text)
        facts = RunFacts(
            references if kind in ("charlm", "characters") else None,
            len(set(corpus_text)) if corpus_text else vocab_size,
            loss=kind,
        )
        diagnosis = diagnose_rows(
            itertools.chain(head, rows), facts, str(path), read_every=log.every
        )
        return replace(
            diagnosis,
            notes=[*_read_notes(log.read), *notes],
            epochs=diagnosis.logged if log.read.steps_from == "epoch" else None,
        )


def loss_kind(
    read: ReadNotes, charlm_log: bool, corpus_text: str | None, vocab_size: int | None
) -> LossKind:
    """What a log's loss is: charlm's (its metrics.jsonl, known by its reference row);
    a per-character cross-entropy (the corpus or the vocabulary size given); a
    cross-entropy of classes (the log has accuracy columns); else of unknown kind."""
    if charlm_log:
        return "charlm"
    if corpus_text or vocab_size is not None:
        return "characters"
    if {"accuracy", "val_accuracy"} & set(read.read_as.values()):
        return "classes"
    return "unknown"


def _read_notes(read: ReadNotes) -> list[str]:
    """How a log was read, as the report's lines say it."""
    shown = [f"{name} as {what}" for name, what in read.read_as.items() if name != what]
    line = f"read as {read.format}" + (f": {', '.join(shown)}" if shown else "")
    if read.kept:
        line += f"; kept as they are: {', '.join(read.kept[:12])}"
        line += f" and {len(read.kept) - 12} more" if len(read.kept) > 12 else ""
    out = [line]
    steps = {
        "epoch": "each epoch is read as a step",
        "order": "the log gives no step: the n-th loss is read as step n",
        "epoch and iteration": "steps: the iteration counter, restarting each epoch, joined "
        "across epochs (their lengths taken from the largest counter logged in each)",
        "epoch and step": "steps: the step counter, restarting each epoch, joined across "
        "epochs (their lengths taken from the largest counter logged in each)",
    }
    if read.steps_from in steps:
        out.append(steps[read.steps_from])
    if read.skipped:
        out.append(
            f"{read.skipped:,} line{'s' if read.skipped > 1 else ''} without a loss skipped "
            f"(the first: line {read.first_skipped:,})"
        )
    return out


def _ordinal(n: int) -> str:
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _plain(value: float | None) -> str:
    """A loss of unknown units, as it was logged."""
    return f"{value:.4g}" if value is not None and math.isfinite(value) else str(value)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _nb(nats: float | None) -> str:
    if nats is None or not math.isfinite(nats):
        return str(nats)
    if nats < 1e-3:
        return f"{nats:.2e} nats ({nats * _BITS:.2e} bits)"
    return f"{nats:.4f} nats ({nats * _BITS:.3f} bits)"


def _signals(row: TrainRow | None) -> dict[str, Any]:
    """A training row's signals as JSON: its step, gradient norm and `Signals`, NaN and
    infinity as null."""
    if row is None:
        return {}
    out = {"step": row.step, "grad_norm": row.grad_norm, **row.signals.to_json()}
    return dict(json_safe({k: v for k, v in out.items() if v is not None}))


def _picture(row: TrainRow) -> list[str]:
    """The signals of a log row as text; a value that is not a finite number (a
    hand-edited or foreign log) shows as '?'."""
    lines, signals = [], row.signals
    if finite(row.grad_norm):
        share = (
            f", {_f(signals.clipped, '.0%')} of steps clipped"
            if signals.clipped is not None
            else ""
        )
        lines.append(f"  gradient norm before clipping {_f(row.grad_norm, '.3g')}{share}")
    for values, label in (
        (signals.grad_norms, "per layer"),
        (signals.update_ratios, "update/weight"),
    ):
        if values:
            shown = ", ".join(f"{k} {_f(v, '.2g')}" for k, v in values.items())
            lines.append(f"  {label:<13} {shown}")
    for layer, per_gate in (signals.gates or {}).items():
        parts = [
            f"{g} {_f(v.mean, '+.2f')} ({_f(v.saturated, '.0%')} saturated)"
            for g, v in per_gate.items()
        ]
        cell = signals.cell.get(layer) if signals.cell is not None else None
        tail = f"; mean |c| {_f(cell, '.2f')}" if cell is not None else ""
        lines.append(f"  gates {layer:<7} " + ", ".join(parts) + tail)
    return lines


def _f(value: object, spec: str) -> str:
    return format(value, spec) if finite(value) else "?"
