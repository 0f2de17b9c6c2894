"""Detectors that read a run's evaluations against its training loss:
`predicts_current_character` (at the first evaluation), `split_mismatch` (a validation
set unlike the training set) and `overfitting`. Their rules are in their docstrings;
what each needs, in `detectors.DETECTORS`."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from charlm.diagnostics.curve import advice, units
from charlm.diagnostics.findings import Finding, finite

if TYPE_CHECKING:
    from charlm.diagnostics.record import RunRecord

__all__ = [
    "new_best",
    "overfitting",
    "predicts_current_character",
    "split_agrees",
    "split_mismatch",
]


def _first_evaluation(h: RunRecord) -> tuple[int, float, float] | None:
    """(step, training loss, validation loss) right after the run's first evaluation;
    None at any other time, or when it has no validation loss."""
    if len(h.evals) != 1 or not h.train:
        return None
    first = h.evals[0]
    return (first.step, h.train_at_eval[0], first.val_loss) if finite(first.val_loss) else None


def _val_losses(h: RunRecord) -> list[tuple[int, float, float]]:
    """(step, validation loss, training loss then) of the evaluations with a loss."""
    return [
        (r.step, r.val_loss, t)
        for r, t in zip(h.evals, h.train_at_eval, strict=True)
        if finite(r.val_loss)
    ]


def predicts_current_character(h: RunRecord) -> Finding | None:
    """At the first evaluation, on a text no short context determines: the training loss
    is under 0.1 nats while the validation loss is above the level of repeating the last
    character: the model learned to copy its input, which is easy, not to predict."""
    ref, first = h.facts.references, _first_evaluation(h)
    if ref is None or first is None:
        return None
    step, train, val = first
    if not (train < 0.1 and val > ref.repeat):
        return None
    return Finding(
        "predicts_current_character",
        step,
        f"the training loss is {train:.3f} nats but the validation loss is {val:.3f}, "
        f"worse than repeating the last character ({ref.repeat:.3f})",
        "targets equal to the inputs (not shifted by one), so the model learns to copy "
        "the character it reads",
        "check that each target is the character after its input (y = x shifted by one)",
    )


def split_mismatch(h: RunRecord) -> Finding | None:
    """At the first evaluation, before any overfitting could explain it: the validation
    accuracy is under half the training accuracy; or the validation loss is more than
    1.5x the training loss and more than 0.5 nats above it (a loss of unknown units:
    more than 2x, and above it by more than a tenth of the first training loss), unless
    the training loss is under 0.1 on a text no short context determines (that is
    `predicts_current_character`)."""
    if len(h.evals) != 1 or not h.train:
        return None
    step = h.evals[0].step
    val_acc, train_acc = h.evals[0].val_accuracy, h.accuracy_at_eval[0]
    if finite(val_acc) and finite(train_acc) and val_acc < train_acc / 2:
        return Finding(
            "split_mismatch",
            step,
            f"at the first evaluation the validation accuracy is {val_acc:.3f} "
            f"against {train_acc:.3f} in training, before any overfitting could explain it: "
            "the validation labels are not distributed like the training labels",
            "a validation set cut from the end of data ordered by class: Keras's "
            "validation_split (like any data[-n:]) takes the last examples as they are "
            "given, before any shuffling, so it can hold one class only",
            "shuffle the examples once before splitting them (perm = torch.randperm(len(x)); "
            "x, y = x[perm], y[perm]; or numpy's permutation before model.fit), or split "
            "with stratification; then check the class counts of both sets",
        )
    first = _first_evaluation(h)
    if first is None:
        return None
    step, train, val = first
    ref = h.facts.references
    if ref is not None and ref.determined_after is None and train < 0.1:
        return None
    if h.facts.nats:
        if not (val > 1.5 * train and val > train + 0.5):
            return None
    elif not (val > 2 * train and val - train > 0.1 * abs(h.curve.values[0])):
        return None
    return Finding(
        "split_mismatch",
        step,
        f"at the first evaluation the validation loss is {val:.3f}{units(h)} against "
        f"{train:.3f} in training: the validation data do not look like the training data",
        "validation taken from the end of a file whose content changes along it (sorted, "
        "grouped by class, another language or format at the end)",
        advice(
            h,
            "shuffle the corpus's documents (or lines) before training; on a corpus of "
            "20,000 characters or more, --split interleaved (the default) holds out blocks "
            "from all along it",
            "shuffle the examples (or the documents) once before splitting them, or hold "
            "out blocks from all along the data rather than its end",
        ),
    )


def split_agrees(h: RunRecord, f: Finding) -> str | None:
    """A later evaluation where validation came close to training."""
    for row, train, acc in zip(
        h.evals[1:], h.train_at_eval[1:], h.accuracy_at_eval[1:], strict=True
    ):
        if "accuracy" in f.seen:
            val = row.val_accuracy
            if finite(val) and finite(acc) and val >= 0.75 * acc:
                return f"at step {row.step:,} the validation accuracy was {val:.3f}"
        elif finite(row.val_loss) and row.val_loss <= 1.2 * train:
            return f"at step {row.step:,} the validation loss was {row.val_loss:.3f}"
    return None


def overfitting(h: RunRecord) -> Finding | None:
    """The validation loss rose at each of the last 3 evaluations (each above the one
    before) while the training loss fell over the same span, after a best evaluation
    that was not the first; unless the run's patience ends it at this evaluation, which
    is already the remedy (the best weights are kept)."""
    evals = _val_losses(h)
    if len(evals) < 4:
        return None
    vals = [v for _, v, _ in evals[-4:]]
    trains = [t for _, _, t in evals[-4:]]
    if not all(b > a for a, b in itertools.pairwise(vals)):
        return None
    if not trains[-1] < trains[0]:
        return None
    best = min(range(len(evals)), key=lambda i: evals[i][1])
    if best == 0:
        return None  # never better than at first: not learned, then forgotten
    since_best = len(evals) - 1 - best
    if h.facts.patience and since_best >= h.facts.patience:
        return None
    u = units(h)
    return Finding(
        "overfitting",
        evals[-1][0],
        f"the validation loss rose from {vals[0]:.3f} to {vals[-1]:.3f}{u} over the last 3 "
        f"evaluations while the training loss fell from {trains[0]:.3f} to "
        f"{trains[-1]:.3f}; the best validation loss, {evals[best][1]:.3f}, "
        f"was at step {evals[best][0]}"
        + ("" if h.facts.own_loop else " (the checkpoint keeps those weights)"),
        "a model large for the data, trained on it many times over",
        advice(
            h,
            "--dropout 0.2 to 0.5 or --weight-drop 0.2 to 0.5, a smaller --hidden-size, a "
            "larger corpus, or --patience 3 to stop at the best step",
            "keep the weights of the best validation loss and stop there (early "
            "stopping), dropout (nn.Dropout, or nn.LSTM's dropout= between layers), weight "
            "decay (the optimizer's weight_decay=), a smaller model, or more data",
        ),
    )


def new_best(h: RunRecord, f: Finding) -> str | None:
    evals = _val_losses(h)
    before = [v for s, v, _ in evals if s <= f.step]
    if not before:
        return None
    for s, v, _ in evals:
        if s > f.step and v < min(before):
            return f"at step {s:,} the validation loss was {v:.3f}, below its earlier best"
    return None
