"""The detectors that read a loop's loss curve alone (a plain `step,loss` log is enough),
and the measures of a curve that every detector shares.

The measures read steps, not rows: a flat line compares the mean over the first quarter
of the steps with the mean over the last; a slowing fall is read over the last `span`
steps; a recovery is a level held over a twentieth of the run. The detectors here judge
loops of the user's own (charlm's trainer clears its gradients and projects its outputs):

- `loss_not_moving`: a flat line, with what its level means;
- `stuck_at_class_frequencies`: a classifier whose accuracy and loss sit at what the
  class frequencies alone give;
- `bounded_softmax`: a loss that settles just above the floor of a softmax of values
  within [-1, 1] (`references.bounded_softmax_floor`);
- `gradients_accumulate`: a loss that fell, then swings up and down without settling,
  as it does when `optimizer.zero_grad()` is missing.
"""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

from charlm.diagnostics.findings import Finding, finite
from charlm.diagnostics.references import bounded_softmax_cap, bounded_softmax_floor

if TYPE_CHECKING:
    from charlm.diagnostics.record import RunRecord

__all__ = [
    "accuracy_rose",
    "advice",
    "at_lr",
    "below_floor",
    "bounded_softmax",
    "fell",
    "flat",
    "gradients_accumulate",
    "loss_not_moving",
    "moved",
    "settled",
    "span",
    "stuck_at_class_frequencies",
    "units",
    "went_below",
]

_NEAR_FLOOR = math.log(3)
"""How far above the bounded-softmax floor a settled loss still names it: the right
class gets at least a third of the most such a softmax can give it."""


# -- words ----------------------------------------------------------------------------


def units(h: RunRecord) -> str:
    """The unit of a loss: nats for a cross-entropy, none for a loss of unknown units."""
    return " nats" if h.facts.nats else ""


def at_lr(h: RunRecord, lr: float | None) -> str:
    """The learning rate a row logged, as the run's advice names it."""
    if not finite(lr):
        return ""
    return f" (learning rate {lr:.3g})" if h.facts.own_loop else f" at --lr {lr:.3g}"


def advice(h: RunRecord, charlm: str, loop: str) -> str:
    """The advice for a charlm run (its flags) or for a loop of the user's own (its code)."""
    return loop if h.facts.own_loop else charlm


# -- measures -------------------------------------------------------------------------


def flat(h: RunRecord) -> tuple[float, float, float] | None:
    """(mean over the first quarter of the steps, mean over the last quarter, the
    tolerance) when the two differ by less than the tolerance: 2% of the first, twice
    the noise of the difference of the means (see `RunRecord.noise`), and for a
    cross-entropy 0.02 nats, whichever is largest. None when they differ by more, or
    when the losses are too noisy for their number to tell (twice that noise over a
    tenth of the first mean)."""
    first_step, now = h.curve.steps[0], h.curve.steps[-1]
    quarter = (now - first_step) / 4
    a, na = h.mean_between(-math.inf, first_step + quarter)
    b, nb = h.mean_between(now - quarter, now)
    if not (na and nb):
        return None
    se = h.noise() * math.sqrt(1 / na + 1 / nb)
    if 2 * se > 0.1 * abs(a):
        return None
    tolerance = max(0.02 * abs(a), 2 * se, 0.02 if h.facts.nats else 0.0)
    return (a, b, tolerance) if abs(a - b) < tolerance else None


def span(h: RunRecord) -> float:
    """The stretch of steps a plateau is read over: 50, or a tenth of the run so far."""
    return max(50.0, h.step / 10)


def fell(h: RunRecord) -> float:
    """How much the training loss fell over the last `span` steps: its level a fifth of
    the way into them against its level at the end (each the mean over a fifth of them)."""
    s, width = h.curve.steps[-1], span(h) / 5
    return h.level(s - span(h) + width, width) - h.level(s, width)


def went_below(h: RunRecord, after: int, level: float) -> str | None:
    """Where, after step `after`, the training loss (the mean over a twentieth of the
    run) first went below `level`."""
    width = max(1.0, (h.curve.steps[-1] - h.curve.steps[0]) / 20)
    for step in h.curve.steps:
        if step > after and h.level(step, width) < level:
            return f"at step {step:,} the loss was {h.level(step, width):.3g}"
    return None


def moved(h: RunRecord, f: Finding) -> str | None:
    """A flat line's loss later went below its level (its mean up to the finding): its
    mean over a tenth of the run by 10% of that level, for a cross-entropy by 0.05 nats,
    and by 4x the noise of the difference of the two means."""
    base, n_base = h.mean_between(-math.inf, f.step)
    drop = max(0.1 * abs(base), 0.05 if h.facts.nats else 0.0)
    width = max(1.0, (h.curve.steps[-1] - h.curve.steps[0]) / 10)
    for step in h.curve.steps:
        mean, n = h.mean_between(step - width, step)
        noise = 4 * h.noise() * math.sqrt(1 / max(n, 1) + 1 / max(n_base, 1))
        if step > f.step and n and mean < base - max(drop, noise):
            return f"at step {step:,} the loss was {mean:.3g}"
    return None


def _chance(h: RunRecord, level: float) -> str:
    """What a flat loss's level means, when it is a uniform guess's: ln V (V known), or,
    for a loss that may be a cross-entropy of a few classes, the nearest ln K."""
    v = h.facts.vocab_size
    if h.facts.nats and v and v > 1:
        if abs(level - math.log(v)) <= 0.1:
            return f"; that is ln {v} = {math.log(v):.3f}, a uniform guess among {v} classes"
        return ""
    k = round(math.exp(level)) if level < 10 else 0
    if 2 <= k <= 5 and abs(level - math.log(k)) <= 0.1:
        hedge = "" if h.facts.nats else ", if the loss is a cross-entropy"
        return (
            f"; {level:.3g} is close to ln {k} = {math.log(k):.3f}, the loss of a uniform "
            f"guess among {k} classes{hedge}: the net has learned nothing"
        )
    return ""


# -- the detectors --------------------------------------------------------------------


def loss_not_moving(h: RunRecord) -> Finding | None:
    """After at least 200 steps and 5 logged values, the loss has not moved: its mean
    over the last quarter of the steps is within the tolerance of `flat` (2%, or the
    noise) of its mean over the first quarter."""
    found = flat(h)
    if found is None:
        return None
    first, now, _ = found
    step = h.train[-1].step
    u = units(h)
    lr = at_lr(h, h.train[-1].lr)
    zero = bool(h.grad_norms) and max(h.grad_norms) == 0
    seen = (
        f"the loss has not moved in {step:,} steps: {first:.3g}{u} on average over the "
        f"first quarter of them, {now:.3g} over the last{lr}{_chance(h, now)}"
    )
    if zero:
        seen += "; the gradient norm is 0 at every logged step: no gradient reaches the weights"
        causes = (
            "loss.backward() is never called, or it runs on a loss cut from the model "
            "(.detach(), .item(), a tensor rebuilt from numbers, torch.no_grad())"
        )
    else:
        causes = (
            "no gradient reaching the weights (loss.backward() never called, the loss cut "
            "from the graph, an optimizer given other tensors than the model's "
            "parameters), or a learning rate far too low (or 0)"
        )
    return Finding(
        "loss_not_moving",
        step,
        seen,
        causes,
        "check that each step runs optimizer.zero_grad(), loss.backward() and "
        "optimizer.step(), in that order, with an optimizer built from "
        "model.parameters(); after backward, print a weight's .grad (None or zeros: "
        "nothing reaches it); then try a learning rate 10x higher",
    )


def stuck_at_class_frequencies(h: RunRecord) -> Finding | None:
    """With a training accuracy logged, after 5 logged values (a Keras history of 5
    epochs has them): the loss is flat (`flat`), the accuracy moved by less than 0.02
    between the first and the last quarter of the steps, and the loss is what the class
    frequencies alone give: within 0.02 of the entropy of a two-class split whose larger
    share is the accuracy (always answering the most common class, with the shares as
    the probabilities), or within 0.05 of ln K with the accuracy within 0.05 of 1/K."""
    found = flat(h)
    if found is None:
        return None
    _, level, _ = found
    first_step, now = h.curve.steps[0], h.curve.steps[-1]
    quarter = (now - first_step) / 4
    before = h.accuracies.mean_between(-math.inf, first_step + quarter)[0]
    acc = h.accuracies.mean_between(now - quarter, now)[0]
    if not (finite(before) and finite(acc)) or abs(acc - before) >= 0.02 or acc <= 0:
        return None
    p = max(acc, 1 - acc)
    split = -(p * math.log(p) + (1 - p) * math.log(1 - p)) if p < 1 else 0.0
    k = round(1 / acc)
    if abs(level - split) <= 0.02:
        what = f"the entropy of a {p:.1%} / {1 - p:.1%} split of two classes ({split:.3f})"
    elif k >= 3 and abs(acc - 1 / k) <= 0.05 and abs(level - math.log(k)) <= 0.05:
        what = f"ln {k} ({math.log(k):.3f}), a uniform guess among {k} classes"
    else:
        return None
    return Finding(
        "stuck_at_class_frequencies",
        h.train[-1].step,
        f"the training accuracy has stayed at {acc:.3f} and the loss at {level:.3f}"
        f"{units(h)}, {what}: the loss of answering with the class frequencies whatever "
        "the input; the net gives the most common class and has learned nothing from "
        "its inputs",
        "inputs the net cannot use as it is: a signal it must carry across many steps with "
        "too few units (an LSTM's forget gate lets its first inputs fade), unscaled "
        "inputs, or labels unrelated to the inputs; or a learning rate too low for the "
        "loss to move",
        "check that the net can fit a few dozen examples alone (many steps on them: the "
        "loss should fall towards 0); if it cannot, give the recurrent layer more units "
        "or shorter sequences (for an LSTM, a forget-gate bias of 1), scale the inputs to "
        "about unit size, and try learning rates 10x higher and lower",
    )


def accuracy_rose(h: RunRecord, f: Finding) -> str | None:
    """The stuck accuracy later rose by 0.05 or more."""
    stuck = h.accuracies.mean_between(-math.inf, f.step)[0]
    for step, acc in zip(h.accuracies.steps, h.accuracies.values, strict=True):
        if step > f.step and acc >= stuck + 0.05:
            return f"at step {step:,} the training accuracy was {acc:.3f}"
    return None


def bounded_softmax(h: RunRecord) -> Finding | None:
    """A cross-entropy over V classes that settles above -ln p, p = e / (e + (V-1)/e),
    the least a softmax of values within [-1, 1] can reach (1.478 nats for V = 26, 0.127
    for 2), and within ln 3 of it, having never gone below it: after at least 200 steps
    and 6 logged values, with its means over the second, third and last quarters of the
    steps m2 > m3 > m4 falling ever slower (or flat), the level they head for (m4 less
    the rest of a geometric series of their falls) is above the floor and within ln 3
    of it, and m4 is 0.05 nats or more below ln V (something was learned)."""
    v = h.facts.vocab_size
    assert v is not None  # NEEDS["vocab_size"]
    floor = bounded_softmax_floor(v)
    if h.lowest_loss <= floor:
        return None
    s = h.curve.steps[-1]
    m2, m3, m4 = (h.mean_between(s * a / 4, s * b / 4) for a, b in ((1, 2), (2, 3), (3, 4)))
    if not (m2[1] and m3[1] and m4[1]):
        return None
    d1, d2 = m2[0] - m3[0], m3[0] - m4[0]
    if d2 <= 0.01 * m4[0]:
        heading = m4[0]
    elif d1 > d2:
        heading = m4[0] - d2 * d2 / (d1 - d2)
    else:
        return None  # not slowing down: it may yet go below
    if not floor < heading < floor + _NEAR_FLOOR or m4[0] >= math.log(v) - 0.05:
        return None
    return Finding(
        "bounded_softmax",
        s,
        f"the loss settles at about {heading:.3f} nats ({m4[0]:.3f} over the last quarter "
        f"of the steps, falling ever slower), above {floor:.3f}, the least a softmax of "
        f"values within [-1, 1] can reach on {v} classes (it cannot give one class more "
        f"than {bounded_softmax_cap(v):.0%}), and never below it",
        "a softmax taken straight of the LSTM's output: h = o * tanh(c) lies within "
        "[-1, 1], so no class can get more than e / (e + (V - 1) / e) of the probability; "
        "or another output squashed into [-1, 1] (a tanh) before the softmax",
        "put a linear layer between the LSTM and the softmax (logits = "
        "nn.Linear(hidden_size, vocab_size)(h)), and give the loss those logits "
        "(nn.CrossEntropyLoss applies its own log-softmax)",
    )


def below_floor(h: RunRecord, f: Finding) -> str | None:
    """A logged loss below the bounded-softmax floor: the outputs are not so bounded."""
    v = h.facts.vocab_size
    if not v:
        return None
    floor = bounded_softmax_floor(v)
    for step, loss in zip(h.curve.steps, h.curve.values, strict=True):
        if step > f.step and loss < floor:
            return f"at step {step:,} the loss was {loss:.3g}, below that floor ({floor:.3f})"
    return None


def gradients_accumulate(h: RunRecord) -> Finding | None:
    """After at least 100 steps and 5 logged values: the lowest logged loss came in the
    first half of the steps so far, after the loss had fallen to half its first logged
    value or less; 3 or more values were logged after it, and their median is at least
    1.5x the lowest and at least 40% of the way from the lowest to their highest: the
    loss went back up and keeps swinging instead of settling. So it goes when the
    gradients are never cleared: with Adam each update follows the sum of every gradient
    so far, the loss falls, then swings up and down, and a lower learning rate only
    slows the swings (a learning rate merely too high gives spikes that fall back to
    the low, or noise around a falling trend). A loss below 0 is not read."""
    values, steps = h.curve.values, h.curve.steps
    if h.lowest_loss < 0:
        return None
    i = values.index(h.lowest_loss)
    low, first = values[i], values[0]
    if steps[i] - steps[0] > (steps[-1] - steps[0]) / 2 or first - low < first / 2:
        return None
    after = values[i + 1 :]
    if len(after) < 3:
        return None
    median, top = statistics.median(after), max(after)
    if median < 1.5 * low or median < low + 0.4 * (top - low):
        return None
    return Finding(
        "gradients_accumulate",
        steps[-1],
        f"the loss fell from {first:.3g} to {low:.3g} by step {steps[i]:,}, then went back "
        f"up and has swung since without settling: over the {len(after)} values logged "
        f"after that low, {median:.3g} at the median and up to {top:.3g}",
        "optimizer.zero_grad() (or model.zero_grad()) is never called, so each "
        "loss.backward() adds its gradient to those of every step before and the "
        "optimizer follows their sum: with Adam the loss falls, then swings up and down "
        "without settling, and a lower learning rate only slows the swings; less often, "
        "a learning rate too high",
        "call optimizer.zero_grad() once per step, before loss.backward() (to sum the "
        "gradients of several batches on purpose, clear them after each optimizer.step()); "
        "only if it is there, lower the learning rate",
    )


def settled(h: RunRecord, f: Finding) -> str | None:
    """The swinging loss later settled: the values logged over the last quarter of the
    steps after the finding (3 or more) all within 1.5x of the lowest logged after it,
    which is no higher than the lowest before."""
    values, steps = h.curve.values, h.curve.steps
    later = [(s, v) for s, v in zip(steps, values, strict=True) if s > f.step]
    before = [v for s, v in zip(steps, values, strict=True) if s <= f.step]
    if not later or not before:
        return None
    low = min(v for _, v in later)
    cut = later[-1][0] - (later[-1][0] - f.step) / 4
    tail = [v for s, v in later if s >= cut]
    if len(tail) < 3 or max(tail) > 1.5 * low or low > min(before):
        return None
    return f"from step {round(cut):,} on the loss stayed near {low:.3g}"
