"""Detectors: rules that read a run's history and say, in words, what is going wrong.

A `History` (see `history`) collects a run's logged rows as they come (training rows at
the logging interval, evaluation rows) together with the facts that do not change
(`RunFacts`: the reference levels of the training text, the vocabulary size, the
clipping threshold). After each row it runs every detector that has not fired yet; a
detector that fires returns a `Finding` (what is seen, with figures; the likely causes;
what to try, with the flag to change) and never fires again in that run.

Each detector's docstring states its rule and thresholds. They look only at the last few
rows and at running figures the history keeps, so feeding a long log row by row stays
linear in its length. A detector needing a signal the log does not have (per-layer
gradient norms, the reference levels) stays silent.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING

from charlm.diagnostics.findings import Finding, finite

if TYPE_CHECKING:
    from charlm.diagnostics.history import History

__all__ = ["DETECTORS"]

_LAYER = re.compile(r"(lstm|gru|rnn)\.l\d+")
"""A recurrent layer's parameter group in a row's `grad_norms`."""


def _first_evaluation(h: History) -> tuple[int, float, float] | None:
    """(step, training loss, validation loss) right after the run's first evaluation;
    None at any other time."""
    if len(h.evals) != 1 or not h.train:
        return None
    return int(h.evals[0]["step"]), h.train_at_eval[0], float(h.evals[0]["val_loss"])


def _fell(h: History, rows: int) -> float:
    """How much the training loss fell over the last `rows` logged values (mean of the
    first 2 of them against the mean of the last 2)."""
    tail = [float(r["loss"]) for r in h.train[-rows:]]
    return statistics.fmean(tail[:2]) - statistics.fmean(tail[-2:])


# -- the detectors ------------------------------------------------------------------
# Each takes the history right after a row was added and returns a Finding or None.


def learning_rate_too_high(h: History) -> Finding | None:
    """The loss became NaN or infinite; or, after step 50, the logged training loss is
    more than 0.5 nats above ln V (worse than guessing uniformly); or a logged value is
    more than 1 nat above the lowest one so far after the loss had fallen by at least
    1 nat from its first value (a spike)."""
    last = h.nonfinite or (h.train[-1] if h.train else None)
    if last is None:
        return None
    lr = last.get("lr")
    at = f" at --lr {lr:.3g}" if finite(lr) else ""
    causes = (
        "a learning rate too high for this model (Adam's steps overshoot), or no gradient clipping"
    )
    advice = "lower --lr (by 10x to start), keep --clip at 1 or lower"
    if last is h.nonfinite:
        seen = f"the training loss became {last['loss']}{at}"
        return Finding("learning_rate_too_high", int(last["step"]), seen, causes, advice)
    loss, step = float(last["loss"]), int(last["step"])
    v = h.facts.vocab_size
    if v and v > 1 and step > 50 and loss > math.log(v) + 0.5:
        return Finding(
            "learning_rate_too_high",
            step,
            f"the training loss is {loss:.3f} nats{at}, above {math.log(v):.3f} "
            f"(ln {v}: guessing every character uniformly)",
            causes,
            advice,
        )
    first = float(h.train[0]["loss"])
    if first - h.lowest_loss >= 1.0 and loss > h.lowest_loss + 1.0:
        return Finding(
            "learning_rate_too_high",
            step,
            f"the training loss jumped to {loss:.3f} nats{at}, after it had reached "
            f"{h.lowest_loss:.3f}",
            causes + "; or a batch unlike the rest of the data",
            advice,
        )
    return None


def learning_rate_too_low(h: History) -> Finding | None:
    """After at least 200 steps and 5 logged values, the training loss (mean of the last
    3) is less than 2% (and less than 0.02 nats) below the first logged value: a flat
    line."""
    if len(h.train) < 5 or int(h.train[-1]["step"]) < 200:
        return None
    first, now = float(h.train[0]["loss"]), h.recent_loss()
    if first - now >= max(0.02, 0.02 * abs(first)):
        return None
    lr = h.train[-1].get("lr")
    at = f" (--lr is {lr:.3g} now)" if finite(lr) else ""
    return Finding(
        "learning_rate_too_low",
        int(h.train[-1]["step"]),
        f"the training loss has not moved in {h.train[-1]['step']} steps: {first:.3f} "
        f"nats at first, {now:.3f} now{at}",
        "a learning rate far too low (or 0), a warm-up much longer than the run, or "
        "weights that do not receive gradients",
        "raise --lr (by 10x to start) and check --warmup-steps",
    )


def stuck_at_unigram(h: History) -> Finding | None:
    """After at least 300 steps and 5 logged values, the training loss (mean of the last
    3) is within 0.1 nats of the training text's unigram entropy and fell less than
    0.05 nats over the last 5 logged values: the model has learned how common each
    character is, and nothing about order."""
    ref = h.facts.references
    if ref is None or len(h.train) < 5 or int(h.train[-1]["step"]) < 300:
        return None
    now = h.recent_loss()
    if abs(now - ref.unigram) > 0.1 or _fell(h, 5) >= 0.05:
        return None
    return Finding(
        "stuck_at_unigram",
        int(h.train[-1]["step"]),
        f"the training loss has stayed at {now:.3f} nats, the text's unigram entropy "
        f"({ref.unigram:.3f}): the model predicts how common each character is, not "
        "which comes next",
        "a learning rate too high or too low, the state reset at every character "
        "(--seq-len 1), or targets that do not follow the inputs",
        "try --lr 10x lower and 10x higher, a --seq-len of 32 or more, and check that "
        "each target is the character after its input",
    )


def plateau_on_determined_text(h: History) -> Finding | None:
    """On a text whose next character is determined by the k before it (the alphabet:
    k = 1), after at least 300 steps and 5 logged values, the training loss (mean of the
    last 3) is above 0.1 nats and fell less than 5% over the last 5 logged values: a
    working model becomes nearly certain here."""
    ref = h.facts.references
    if ref is None or ref.determined_after is None:
        return None
    if len(h.train) < 5 or int(h.train[-1]["step"]) < 300:
        return None
    now = h.recent_loss()
    if now <= 0.1 or _fell(h, 5) >= 0.05 * now:
        return None
    k = ref.determined_after
    before = "the character" if k == 1 else f"the {k} characters"
    return Finding(
        "plateau_on_determined_text",
        int(h.train[-1]["step"]),
        f"the training loss settled at {now:.3f} nats (the right character at about "
        f"{math.exp(-now):.0%}) on a text where {before} before each one "
        f"decide{'s' if k == 1 else ''} it, where a working model gets close to 0",
        "outputs that cannot grow large, such as a softmax put straight on the LSTM's "
        "tanh-bounded output with no linear projection (charlm always projects); a "
        "window shorter than the context needed; a model too small; or a learning rate "
        "that decayed too soon",
        "in a model of your own, a linear projection between the LSTM and the softmax; "
        "in charlm, a larger --hidden-size, --dropout 0 or more --max-steps"
        + (f", and a --seq-len above {k}" if k > 1 else ""),
    )


def exploding_gradients(h: History) -> Finding | None:
    """Any of: a logged gradient norm before clipping over 1,000x the clipping threshold;
    after step 100, over 90% of the steps in the last 5 logging intervals clipped (the
    threshold hides a gradient that would grow: a healthy run clips only now and then);
    after 8 logged values, the norm (median of the last 3) over 5x its median over the
    first 3 and, when the log has the share, over half of the recent steps clipped."""
    if not h.train:
        return None
    norms = h.grad_norms
    last = h.train[-1]
    step = int(last["step"])
    clip = h.facts.clip
    if norms and clip and finite(last.get("grad_norm")) and norms[-1] > 1000 * clip:
        seen = (
            f"the gradient norm before clipping reached {norms[-1]:.3g}, "
            f"{norms[-1] / clip:,.0f}x the clipping threshold {clip:g}"
        )
        return _exploding(step, seen)
    shares = [float(r["clipped"]) for r in h.train[-5:] if finite(r.get("clipped"))]
    if step > 100 and len(shares) == 5 and statistics.fmean(shares) > 0.9:
        recent_norm = statistics.median(norms[-5:]) if norms else math.nan
        against = f" against the threshold {clip:g}" if clip else ""
        seen = (
            f"{statistics.fmean(shares):.0%} of the steps in the last 5 logging intervals "
            f"were clipped (gradient norm before clipping {recent_norm:.3g}{against}): "
            "clipping holds down a gradient that would otherwise grow"
        )
        return _exploding(step, seen)
    if len(norms) < 8:
        return None
    early, recent = statistics.median(norms[:3]), statistics.median(norms[-3:])
    clipped = [float(r["clipped"]) for r in h.train[-3:] if finite(r.get("clipped"))]
    if early <= 0 or recent <= 5 * early or (clipped and statistics.fmean(clipped) <= 0.5):
        return None
    share = f"; {statistics.fmean(clipped):.0%} of recent steps were clipped" if clipped else ""
    seen = (
        f"the gradient norm before clipping grew {recent / early:.0f}x, from {early:.3g} "
        f"to {recent:.3g}{share}"
    )
    return _exploding(step, seen)


def _exploding(step: int, seen: str) -> Finding:
    return Finding(
        "exploding_gradients",
        step,
        seen,
        "gradients that are never cleared between steps (a missing zero_grad: they add "
        "up), a learning rate too high, or long windows without clipping",
        "in a loop of your own, clear the gradients before every backward pass; in "
        "charlm, lower --lr or --clip",
    )


def vanishing_gradients(h: History) -> Finding | None:
    """With two or more LSTM layers and per-layer gradient norms logged: after step 100,
    the first layer's gradient norm is under 1% of the last layer's in each of the last
    3 logged values: the first layers hardly learn."""
    rows = h.train[-3:]
    if len(rows) < 3 or int(rows[-1]["step"]) < 100:
        return None
    ratios = []
    for r in rows:
        norms = r.get("grad_norms")
        if not isinstance(norms, dict):
            return None
        layers = sorted(
            (k for k in norms if _LAYER.fullmatch(k)), key=lambda k: int(k.rsplit(".l", 1)[1])
        )
        if len(layers) < 2:
            return None
        first, last = norms[layers[0]], norms[layers[-1]]
        if not (finite(first) and finite(last)) or last <= 0:
            return None
        ratios.append(first / last)
    if max(ratios) >= 0.01:
        return None
    gates = rows[-1].get("gates")
    saturated = ""
    if isinstance(gates, dict) and isinstance(gates.get("l0"), dict):
        shares = [
            float(g["saturated"])
            for g in gates["l0"].values()
            if isinstance(g, dict) and finite(g.get("saturated"))
        ]
        if shares:
            saturated = f"; {max(shares):.0%} of the first layer's gate units are saturated"
    return Finding(
        "vanishing_gradients",
        int(rows[-1]["step"]),
        f"the first LSTM layer's gradient is {statistics.median(ratios):.2g} of the last "
        f"layer's{saturated}",
        "saturated gates (large weights or biases, a learning rate that pushed them "
        "there), or a stack deeper than the data needs",
        "fewer --num-layers, a lower --lr, or a fresh run from the default initialisation",
    )


def predicts_current_character(h: History) -> Finding | None:
    """At the first evaluation, on a text no short context determines: the training loss
    is under 0.1 nats while the validation loss is above the level of repeating the last
    character: the model learned to copy its input, which is easy, not to predict."""
    ref, first = h.facts.references, _first_evaluation(h)
    if ref is None or ref.determined_after is not None or first is None:
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


def split_mismatch(h: History) -> Finding | None:
    """At the first evaluation: the validation loss is more than 1.5x the training loss
    and more than 0.5 nats above it (before any overfitting could explain it), unless
    the training loss is under 0.1 on a text no short context determines (that is
    `predicts_current_character`)."""
    first = _first_evaluation(h)
    if first is None:
        return None
    step, train, val = first
    ref = h.facts.references
    if ref is not None and ref.determined_after is None and train < 0.1:
        return None
    if not (val > 1.5 * train and val > train + 0.5):
        return None
    return Finding(
        "split_mismatch",
        step,
        f"at the first evaluation the validation loss is {val:.3f} nats against "
        f"{train:.3f} in training: the validation text does not look like the training text",
        "validation taken from the end of a file whose content changes along it (sorted, "
        "grouped by class, another language or format at the end)",
        "shuffle the corpus's documents (or lines) before training; on a corpus of "
        "20,000 characters or more, --split interleaved (the default) holds out blocks "
        "from all along it",
    )


def overfitting(h: History) -> Finding | None:
    """The validation loss rose at each of the last 3 evaluations (each above the one
    before) while the training loss fell over the same span; unless the run's patience
    ends it at this evaluation, which is already the remedy (the best weights are kept)."""
    if len(h.evals) < 4:
        return None
    vals = [float(r["val_loss"]) for r in h.evals[-4:]]
    trains = h.train_at_eval[-4:]
    if not all(b > a for a, b in itertools.pairwise(vals)):
        return None
    if not trains[-1] < trains[0]:
        return None
    best = min(h.evals, key=lambda r: float(r["val_loss"]))
    since_best = len(h.evals) - 1 - h.evals.index(best)
    if h.facts.patience and since_best >= h.facts.patience:
        return None
    return Finding(
        "overfitting",
        int(h.evals[-1]["step"]),
        f"the validation loss rose from {vals[0]:.3f} to {vals[-1]:.3f} over the last 3 "
        f"evaluations while the training loss fell from {trains[0]:.3f} to "
        f"{trains[-1]:.3f}; the best validation loss, {float(best['val_loss']):.3f}, "
        f"was at step {best['step']} (the checkpoint keeps those weights)",
        "a model large for the corpus, trained on it many times over",
        "--dropout 0.2 to 0.5 or --weight-drop 0.2 to 0.5, a smaller --hidden-size, a "
        "larger corpus, or --patience 3 to stop at the best step",
    )


DETECTORS: tuple[Callable[[History], Finding | None], ...] = (
    learning_rate_too_high,
    learning_rate_too_low,
    stuck_at_unigram,
    plateau_on_determined_text,
    exploding_gradients,
    vanishing_gradients,
    predicts_current_character,
    split_mismatch,
    overfitting,
)
"""In the order they are checked (and reported when several fire on one row)."""
