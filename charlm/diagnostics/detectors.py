"""Detectors: rules that read a run's history and say, in words, what is going wrong.

A `History` (see `history`) collects a run's logged rows as they come (training rows at
the logging interval, evaluation rows) together with the facts that do not change
(`RunFacts`: what the loss is, the reference levels of the training text, the vocabulary
size, the clipping threshold). After each row it runs every detector that has not fired
yet and has what it needs; a detector that fires returns a `Finding` (what is seen, with
figures; the likely causes; what to try) and never fires again in that run. A detector
reads only the run's record (`record.RunRecord`, which a `History` is), so that the
detectors and the history that runs them do not import each other.

Each detector's docstring states its rule and thresholds, and its `Rule` in `DETECTORS`
what it needs: the steps the run must have reached, the logged values, the evaluations,
the signals (a corpus, a vocabulary size, a gradient norm), the kinds of loss it reads,
how a run gets past its finding (`passed`), and which findings its own explains (left
out of a report where it holds). Thresholds and windows are in steps, never in rows,
so a log written every step and one written every 10 or 50 give the same answer; a rule
that needs several values says how many.

A charlm run's advice names charlm's flags; a loop of the user's own gets advice in
terms of its code, and only a cross-entropy is spoken of in nats (`RunFacts.loss`).
The detectors that read only the loss curve are in `curve`; those of the gradients in
`gradients`; those of the evaluations in `evaluations`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from charlm.diagnostics import curve, evaluations, gradients
from charlm.diagnostics.curve import advice, at_lr, units
from charlm.diagnostics.findings import Finding, LossKind, RunFacts, finite

if TYPE_CHECKING:
    from charlm.diagnostics.record import RunRecord

__all__ = ["DETECTORS", "NEEDS", "Rule"]

ALL: tuple[LossKind, ...] = ("charlm", "characters", "classes", "unknown")
OWN: tuple[LossKind, ...] = ("characters", "classes", "unknown")
TEXT: tuple[LossKind, ...] = ("charlm", "characters")


@dataclass(frozen=True)
class Rule:
    """A detector (`check`) and what it needs to judge a run."""

    check: Callable[[RunRecord], Finding | None]
    steps: int = 0
    """The step the run must have reached."""
    points: int = 0
    """The training values it must have logged."""
    evals: int = 0
    """The evaluations it must have logged."""
    needs: tuple[str, ...] = ()
    """Signals (keys of `NEEDS`)."""
    kinds: tuple[LossKind, ...] = ALL
    """The kinds of loss it reads."""
    passed: Callable[[RunRecord, Finding], str | None] | None = None
    """How the run got past the finding, read from the rest of the run (None: it did not)."""
    explains: tuple[str, ...] = ()
    """Findings this one explains: one of them does not fire after it, and a report where
    it holds leaves them out."""
    costly: bool = False
    """It reads many logged values each time: run on a schedule (see `history`) and at
    the end."""

    @property
    def name(self) -> str:
        return self.check.__name__

    def applies(self, facts: RunFacts) -> bool:
        return facts.loss in self.kinds

    def missing(self, h: RunRecord, listed_only: bool = False) -> str | None:
        """Why `h` cannot be judged by this rule yet (None: it can); `listed_only`: only
        the reasons a report lists (a signal the log could have carried, a run too short)."""
        for need in self.needs:
            has, what, listed = NEEDS[need]
            if not has(h):
                return f"needs {what}" if listed or not listed_only else None
        if self.evals and not h.evals:
            return "needs evaluations: a validation loss or accuracy (val_loss, val_accuracy)"
        if h.step < self.steps:
            return f"needs {self.steps:,} steps; the log ends at step {h.step:,}"
        if len(h.train) < self.points:
            return f"needs {self.points} logged training losses; the log has {len(h.train)}"
        if len(h.evals) < self.evals:
            have = len(h.evals)
            return (
                f"needs {self.evals} evaluation{'s' if self.evals > 1 else ''}; the log has {have}"
            )
        return None


NEEDS: dict[str, tuple[Callable[[RunRecord], bool], str, bool]] = {
    "references": (
        lambda h: h.facts.references is not None,
        "the training text (--corpus FILE)",
        True,
    ),
    "determined": (
        lambda h: (
            h.facts.references is not None and h.facts.references.determined_after is not None
        ),
        "a text where a short context decides each character",
        False,
    ),
    "undetermined": (
        lambda h: h.facts.references is not None and h.facts.references.determined_after is None,
        "a text no short context decides",
        False,
    ),
    "vocab_size": (
        lambda h: h.facts.vocab_size is not None and h.facts.vocab_size > 1,
        "the vocabulary size (--vocab-size N, or --corpus FILE) and a cross-entropy loss",
        True,
    ),
    "grad_norm": (lambda h: bool(h.grad_norms), "a gradient-norm column (grad_norm)", True),
    "layer_norms": (
        lambda h: bool(h.train) and h.train[-1].signals.grad_norms is not None,
        "per-layer gradient norms",
        False,
    ),
    "accuracy": (lambda h: len(h.accuracies) > 0, "a training-accuracy column", False),
}
"""A signal -> (whether a history has it, what it is, whether a report lists its lack)."""


# -- the detectors ------------------------------------------------------------------
# Each takes the history right after a row was added and returns a Finding or None.


def learning_rate_too_high(h: RunRecord) -> Finding | None:
    """The loss became NaN or infinite; or, after step 50, the logged training loss is
    more than 0.5 nats above ln V (worse than guessing uniformly); or a logged value
    jumped above the lowest one so far after the loss had fallen from its first value:
    by more than 1 nat after a fall of 1 nat or more (a cross-entropy), or by more than
    half the fall after a fall of half its first value or more (a loss of unknown units),
    and in either case by more than 4x the noise of the logged losses (`RunRecord.noise`:
    a noisy batch loss is not a jump)."""
    last = h.nonfinite or (h.train[-1] if h.train else None)
    if last is None:
        return None
    at = at_lr(h, last.lr)
    causes = (
        "a learning rate too high for this model (Adam's steps overshoot), or no gradient clipping"
    )
    tip = advice(
        h,
        "lower --lr (by 10x to start), keep --clip at 1 or lower",
        "lower the learning rate you give the optimizer (by 10x to start), and clip the "
        "gradient before each step: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0) "
        "between loss.backward() and optimizer.step()",
    )
    if h.nonfinite is not None:
        seen = f"the training loss became {h.nonfinite.loss}{at}"
        return Finding("learning_rate_too_high", h.nonfinite.step, seen, causes, tip)
    loss, step = h.curve.values[-1], last.step  # the loss of the last training row
    v = h.facts.vocab_size
    if h.facts.nats and v and v > 1 and step > 50 and loss > math.log(v) + 0.5:
        return Finding(
            "learning_rate_too_high",
            step,
            f"the training loss is {loss:.3f} nats{at}, above {math.log(v):.3f} "
            f"(ln {v}: guessing every {'character' if h.facts.loss in TEXT else 'class'} "
            "uniformly)",
            causes,
            tip,
        )
    jump = _jump(h)
    if jump is not None and loss > h.lowest_loss + jump:
        return Finding(
            "learning_rate_too_high",
            step,
            f"the training loss jumped to {loss:.3f}{units(h)}{at}, after it had reached "
            f"{h.lowest_loss:.3f}",
            causes + "; or a batch unlike the rest of the data",
            tip,
        )
    return None


def _jump(h: RunRecord) -> float | None:
    """How far above its lowest a loss must go to count as a jump (None: it has not
    fallen enough yet for a jump to mean anything)."""
    first = h.curve.values[0]
    fall = first - h.lowest_loss
    if h.facts.nats:
        jump = 1.0 if fall >= 1.0 else None
    else:
        jump = fall / 2 if first > 0 and fall >= first / 2 else None
    return None if jump is None else max(jump, 4 * h.noise())


def _back_down(h: RunRecord, f: Finding) -> str | None:
    """A jump's loss back near the low before it; a loss above ln V back below it."""
    if h.nonfinite is not None and h.nonfinite.step <= f.step:
        return None
    i = h.curve.steps.index(f.step) if f.step in h.curve.steps else None
    if i is None or i == 0:
        return None
    before = min(h.curve.values[:i])
    v = h.facts.vocab_size
    if "above" in f.seen and v:
        target = math.log(v)
    else:
        jump = h.curve.values[i] - before
        target = before + 0.1 * jump
    for step, loss in zip(h.curve.steps[i + 1 :], h.curve.values[i + 1 :], strict=True):
        if loss <= target:
            return f"at step {step:,} the loss was {loss:.3g}, back near {before:.3g}"
    return None


def learning_rate_too_low(h: RunRecord) -> Finding | None:
    """After at least 200 steps and 5 logged values, the training loss has not moved:
    the mean over the last quarter of the steps is within 2% (and 0.02 nats, and twice
    the noise of the means) of the mean over the first quarter (see `curve.flat`)."""
    flat = curve.flat(h)
    if flat is None:
        return None
    first, now, _ = flat
    last = h.train[-1]
    at = f" (--lr is {last.lr:.3g} now)" if finite(last.lr) else ""
    return Finding(
        "learning_rate_too_low",
        last.step,
        f"the training loss has not moved in {last.step} steps: {first:.3f} "
        f"nats at first, {now:.3f} now{at}",
        "a learning rate far too low (or 0), a warm-up much longer than the run, or "
        "weights that do not receive gradients",
        "raise --lr (by 10x to start) and check --warmup-steps",
    )


def stuck_at_unigram(h: RunRecord) -> Finding | None:
    """After at least 300 steps and 5 logged values, the training loss (mean of the last
    3) is within 0.1 nats of the training text's unigram entropy and fell less than
    0.05 nats over the last `curve.span` steps: the model has learned how common each
    character is, and nothing about order."""
    ref = h.facts.references
    assert ref is not None  # NEEDS["references"]
    now = h.recent_loss()
    if abs(now - ref.unigram) > 0.1 or curve.fell(h) >= 0.05:
        return None
    return Finding(
        "stuck_at_unigram",
        h.train[-1].step,
        f"the training loss has stayed at {now:.3f} nats, the text's unigram entropy "
        f"({ref.unigram:.3f}): the model predicts how common each character is, not "
        "which comes next",
        "a learning rate too high or too low, the state reset at every character "
        "(--seq-len 1), or targets that do not follow the inputs",
        advice(
            h,
            "try --lr 10x lower and 10x higher, a --seq-len of 32 or more, and check that "
            "each target is the character after its input",
            "try learning rates 10x lower and 10x higher, windows of 32 characters or more "
            "with the state carried through them, and check that each target is the "
            "character after its input (y = x shifted by one)",
        ),
    )


def _below_unigram(h: RunRecord, f: Finding) -> str | None:
    ref = h.facts.references
    return None if ref is None else curve.went_below(h, f.step, ref.unigram - 0.2)


def plateau_on_determined_text(h: RunRecord) -> Finding | None:
    """On a text whose next character is determined by the k before it (the alphabet:
    k = 1), after at least 300 steps and 5 logged values, the training loss (mean of the
    last 3) is above 0.1 nats and fell less than 5% over the last `curve.span` steps: a
    working model becomes nearly certain here."""
    ref = h.facts.references
    assert ref is not None and ref.determined_after is not None  # NEEDS["determined"]
    now = h.recent_loss()
    if now <= 0.1 or curve.fell(h) >= 0.05 * now:
        return None
    k = ref.determined_after
    before = "the character" if k == 1 else f"the {k} characters"
    return Finding(
        "plateau_on_determined_text",
        h.train[-1].step,
        f"the training loss settled at {now:.3f} nats (the right character at about "
        f"{math.exp(-now):.0%}) on a text where {before} before each one "
        f"decide{'s' if k == 1 else ''} it, where a working model gets close to 0",
        "outputs that cannot grow large, such as a softmax put straight on the LSTM's "
        "tanh-bounded output with no linear projection (charlm always projects); a "
        "window shorter than the context needed; a model too small; or a learning rate "
        "that decayed too soon",
        advice(
            h,
            "in a model of your own, a linear projection between the LSTM and the "
            "softmax; in charlm, a larger --hidden-size, --dropout 0 or more --max-steps"
            + (f", and a --seq-len above {k}" if k > 1 else ""),
            "a linear projection between the LSTM and the softmax (nn.Linear(hidden_size, "
            "vocab_size)), a larger hidden size, or more steps"
            + (f"; windows longer than {k} characters" if k > 1 else ""),
        ),
    )


def _near_zero(h: RunRecord, f: Finding) -> str | None:
    return curve.went_below(h, f.step, 0.1)


DETECTORS: tuple[Rule, ...] = (
    Rule(learning_rate_too_high, passed=_back_down),
    Rule(learning_rate_too_low, steps=200, points=5, kinds=("charlm",), passed=curve.moved),
    Rule(curve.loss_not_moving, steps=200, points=5, kinds=OWN, passed=curve.moved),
    Rule(
        curve.stuck_at_class_frequencies,
        points=5,
        needs=("accuracy",),
        kinds=OWN,
        passed=curve.accuracy_rose,
        explains=("loss_not_moving",),
    ),
    Rule(
        stuck_at_unigram, steps=300, points=5, needs=("references",), kinds=TEXT,
        passed=_below_unigram,
    ),
    Rule(
        plateau_on_determined_text, steps=300, points=5, needs=("determined",), kinds=TEXT,
        passed=_near_zero,
    ),
    Rule(
        curve.bounded_softmax,
        steps=200,
        points=6,
        needs=("vocab_size",),
        kinds=OWN,
        passed=curve.below_floor,
        explains=("plateau_on_determined_text",),
    ),
    Rule(gradients.exploding_gradients, needs=("grad_norm",), points=1, costly=True),
    Rule(gradients.vanishing_gradients, steps=100, points=3, needs=("layer_norms",)),
    Rule(evaluations.predicts_current_character, needs=("undetermined",), evals=1),
    Rule(
        evaluations.split_mismatch, evals=1, passed=evaluations.split_agrees,
        explains=("overfitting",),
    ),
    Rule(evaluations.overfitting, evals=4, passed=evaluations.new_best),
    Rule(
        curve.gradients_accumulate,
        steps=100,
        points=5,
        kinds=OWN,
        passed=curve.settled,
        explains=("learning_rate_too_high",),
        costly=True,
    ),
)  # fmt: skip
"""In the order they are checked (and reported when several fire on one row)."""
