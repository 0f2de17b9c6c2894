"""The watcher's rules: each reads what the probes measured (`Run`) and names a cause.

Each rule's docstring states what it measures and its thresholds; each returns a
`Finding` while its condition holds, and `clears` says how the run got past it once it
no longer does (the finding is then kept, marked passed). A rule that reads the loss's
outcome (a plateau) rather than a cause waits for its condition to last (`Rule`). The
words are for someone with a loop of their own: the advice names the line to add or
change, not a charlm flag.
Thresholds are in steps, never in rows, so how often a loop calls `step` with metrics
does not change what fires.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from charlm.diagnostics.findings import Finding
from charlm.diagnostics.references import bounded_softmax_cap
from charlm.watcher.probes import LayerGates, SoftmaxCall

__all__ = ["RULES", "Rule", "Run", "Site", "StepRecord"]

BOUND = 1.0 + 1e-5
"""The largest |value| still taken for a tanh- or sigmoid-bounded output."""


@dataclass
class StepRecord:
    """What one step showed."""

    step: int
    loss: float | None
    metrics: dict[str, float]
    grad_norms: dict[str, float]  # by layer, before the optimizer stepped
    with_grad: int  # parameters whose gradient was not zero when the optimizer stepped
    stepped: int  # optimizer steps taken during this step
    held: int  # parameters still holding an earlier gradient at the first arrival
    checked: int  # parameters checked for that

    @property
    def grad_norm(self) -> float | None:
        if not self.grad_norms:
            return None
        return math.sqrt(sum(v * v for v in self.grad_norms.values()))


@dataclass
class Site:
    """A place in the loop where a softmax (or log-softmax, or cross-entropy) is taken."""

    where: str
    classes: int
    first_step: int
    largest_ever: float = 0.0
    steps: int = 0  # steps it was seen in
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=100))
    over_at: int | None = None  # the first step a value beyond the bound was fed to it

    def add(self, step: int, call: SoftmaxCall) -> None:
        self.steps += 1
        self.largest_ever = max(self.largest_ever, call.largest)
        self.recent.append(call.largest)
        if call.largest > BOUND and self.over_at is None:
            self.over_at = step


@dataclass
class Run:
    """Everything the rules read, kept up to date by the watcher."""

    records: deque[StepRecord] = field(default_factory=lambda: deque(maxlen=1000))
    first: list[StepRecord] = field(default_factory=list)  # the first 20 steps
    steps: int = 0
    optimizer_steps: int = 0
    optimizer_params: int = 0  # parameters the optimizers hold
    params: int = 0  # parameters watched that require a gradient
    arrived: int = 0  # gradients that reached a watched parameter, in all
    never: list[str] = field(default_factory=list)  # parameters no gradient ever reached
    not_optimized: list[str] = field(default_factory=list)
    held_streak: int = 0  # consecutive steps whose gradients found old ones
    cleared_streak: int = 0  # consecutive steps since, whose gradients found none
    sites: dict[str, Site] = field(default_factory=dict)
    gates: dict[str, LayerGates] = field(default_factory=dict)
    train_labels: dict[int, int] | None = None  # class -> count
    val_labels: dict[int, int] | None = None
    fired: set[str] = field(default_factory=set)

    @property
    def last(self) -> StepRecord | None:
        return self.records[-1] if self.records else None

    @property
    def classes(self) -> int | None:
        """How many classes the loop's softmax spreads over (or the labels have)."""
        counts = [s.classes for s in self.sites.values()]
        if self.train_labels:
            counts.append(len(set(self.train_labels) | set(self.val_labels or {})))
        return max(counts) if counts else None

    def losses(self, steps: int) -> list[float]:
        """The losses of the last `steps` steps that had one."""
        out = [r.loss for r in list(self.records)[-steps:] if r.loss is not None]
        return [x for x in out if math.isfinite(x)]

    def metric(self, name: str) -> list[tuple[int, float]]:
        return [(r.step, r.metrics[name]) for r in self.records if name in r.metrics]


def _shares(counts: dict[int, int]) -> str:
    total = sum(counts.values())
    parts = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"class {c} {n / total:.1%}" for c, n in parts[:6])


def _entropy(counts: dict[int, int]) -> float:
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values() if n)


# -- the rules ------------------------------------------------------------------------


def gradients_accumulate(run: Run) -> Finding | None:
    """At 3 or more steps in a row, when the first gradient of the step arrived, at least
    half of the parameters checked still held a gradient from before the last optimizer
    step: nothing cleared them, so every step adds its gradient to all those before."""
    last = run.last
    if last is None or run.held_streak < 3:
        return None
    norms = [r.grad_norm for r in run.first if r.grad_norm]
    now = last.grad_norm
    growth = ""
    if norms and now:
        growth = (
            f"; the gradient norm went from {norms[0]:,.3g} at step {run.first[0].step} to "
            f"{now:,.3g} now"
        )
    return Finding(
        "gradients_accumulate",
        last.step,
        f"at each of the last {run.held_streak} steps, {last.held} of {last.checked} "
        "parameters still held earlier steps' gradients when the next backward pass "
        f"began: every step adds its gradient to all the ones before{growth}",
        "`optimizer.zero_grad()` (or `model.zero_grad()`) is never called, so "
        "`loss.backward()` adds to the old gradients instead of replacing them; with Adam "
        "the steps then follow the sum of every gradient so far, and the loss swings",
        "call `optimizer.zero_grad()` once per step, before `loss.backward()` (to sum the "
        "gradients of several batches on purpose, clear them after each `optimizer.step()`)",
    )


def _accumulate_cleared(run: Run) -> str | None:
    if run.cleared_streak >= 10 and run.last is not None:
        return (
            f"from step {run.last.step - run.cleared_streak + 1} on, the gradients were "
            "cleared between steps"
        )
    return None


def no_gradient(run: Run) -> Finding | None:
    """After 3 or more steps, no gradient has reached any watched parameter (none of
    their `.grad` was ever set): with an optimizer, it stepped with nothing to step by."""
    last = run.last
    if last is None or run.steps < 3 or run.arrived or not run.params:
        return None
    if run.optimizer_steps:
        seen = (
            f"the optimizer has stepped {run.optimizer_steps:,} times and none of its "
            f"{run.optimizer_params:,} parameters ever had a gradient (every `.grad` is "
            "None): the weights have not changed since they were initialised"
        )
    else:
        seen = (
            f"{run.steps:,} steps have run and no gradient has reached any of the "
            f"{run.params:,} parameters watched: nothing has changed them"
        )
    return Finding(
        "no_gradient",
        last.step,
        seen,
        "`loss.backward()` is never called; or it is called on a tensor cut from the "
        "model's graph (`.detach()`, `.item()`, a loss computed under `torch.no_grad()`)",
        "call `loss.backward()` after computing the loss and before `optimizer.step()`",
    )


def _gradients_arrived(run: Run) -> str | None:
    return "gradients reached the parameters later on" if run.arrived else None


def unused_parameters(run: Run) -> Finding | None:
    """After 20 or more steps in which gradients arrived, some watched parameters that
    require one have never received a gradient."""
    last = run.last
    if last is None or not run.arrived or run.steps < 20 or not run.never:
        return None
    shown = ", ".join(run.never[:5]) + (
        f" and {len(run.never) - 5} more" if len(run.never) > 5 else ""
    )
    return Finding(
        "unused_parameters",
        last.step,
        f"{len(run.never)} of {run.params} parameters never received a gradient in "
        f"{run.steps:,} steps: {shown}",
        "a layer the forward pass never uses, a branch cut from the graph with "
        "`.detach()`, or an output the loss never reads",
        "check that every layer you built is used in `forward` and reaches the loss; "
        "set `requires_grad_(False)` on the ones you mean to keep fixed",
    )


def not_optimized(run: Run) -> Finding | None:
    """Once an optimizer has stepped: model parameters that require a gradient but are
    in no optimizer watched."""
    last = run.last
    if last is None or not run.optimizer_steps or not run.not_optimized:
        return None
    names = ", ".join(run.not_optimized[:5])
    more = len(run.not_optimized) - 5
    return Finding(
        "not_optimized",
        last.step,
        f"{len(run.not_optimized)} of the model's parameters are in no optimizer "
        f"({names}{f' and {more} more' if more > 0 else ''}): they get gradients and "
        "never change",
        "the optimizer was given only some of the model's parameters (one layer's, or a "
        "list built before a layer was added)",
        "give the optimizer all of them: `torch.optim.Adam(model.parameters(), lr=...)`",
    )


def _bounded(run: Run) -> Site | None:
    """A softmax site fed only values within [-1, 1], pressed against that bound: seen
    at 100 or more steps, over the last 50 of them never below 0.9 at its largest and
    not growing (by 0.02 or more against the 50 before)."""
    for site in run.sites.values():
        if site.over_at is not None or site.steps < 100 or site.classes < 2:
            continue
        recent = list(site.recent)
        last50, before = recent[-50:], recent[-100:-50]
        if min(last50) < 0.9 or (before and max(last50) - max(before) >= 0.02):
            continue
        return site
    return None


def bounded_softmax(run: Run) -> Finding | None:
    """See `_bounded`. The likeliest of C classes then gets at most
    `bounded_softmax_cap(C, b)` of the probability, b the largest |value| seen: a
    cross-entropy of at least the log of its inverse."""
    site, last = _bounded(run), run.last
    if site is None or last is None:
        return None
    b, c = site.largest_ever, site.classes
    best = bounded_softmax_cap(c, b)
    yours = ""
    losses = run.losses(20)
    if losses:
        yours = f"; the loss is {statistics.fmean(losses):.3f} now"
    return Finding(
        "bounded_softmax",
        last.step,
        f"the softmax at {site.where} has been fed only values within [-1, 1] since step "
        f"{site.first_step} (largest |value| {b:.3f}): with {c} classes the likeliest can "
        f"get at most {best:.1%} of the probability, a cross-entropy of at least "
        f"{-math.log(best):.3f}{yours}",
        "the softmax is taken straight of a bounded output, such as an LSTM's "
        "h = o * tanh(c), with no linear layer to scale it",
        "put a linear layer between the recurrent output and the softmax "
        "(`nn.Linear(hidden_size, classes)`, no activation after it): its outputs are "
        "not bounded",
    )


def _softmax_unbounded(run: Run) -> str | None:
    over = [s for s in run.sites.values() if s.over_at is not None]
    if over:
        s = over[0]
        return f"from step {s.over_at} the values fed to {s.where} went beyond ±1"
    return None


def exploding_gradients(run: Run) -> Finding | None:
    """The gradient norm is not finite, or over 1,000x its median over the first 10
    steps; not when the gradients pile up (`gradients_accumulate` names that)."""
    last = run.last
    if last is None or last.grad_norm is None or "gradients_accumulate" in run.fired:
        return None
    early = [r.grad_norm for r in run.first[:10] if r.grad_norm]
    now = last.grad_norm
    if math.isfinite(now) and not (early and now > 1000 * statistics.median(early)):
        return None
    grew = (
        f"from {statistics.median(early):.3g} over the first steps to {now:.3g}"
        if early
        else f"{now}"
    )
    return Finding(
        "exploding_gradients",
        last.step,
        f"the gradient norm went {grew}",
        "a learning rate too high, long sequences with no clipping, or weights that grew "
        "until the recurrence amplifies",
        "clip the gradients before the optimizer steps "
        "(`torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)`) and lower the "
        "learning rate",
    )


def vanishing_gradients(run: Run) -> Finding | None:
    """In a stack of recurrent layers (`lstm.l0`, `lstm.l1`, ...; the gradient norms of
    every step, from step 1), at step 100 or later: the first layer's gradient under
    1/1,000 of the last layer's at each of the last 20 steps: the first layers hardly
    learn."""
    last = run.last
    if last is None or last.step < 100:
        return None
    ratios = []
    for record in list(run.records)[-20:]:
        ratio = _first_to_last(record.grad_norms)
        if ratio is None:
            return None
        ratios.append(ratio)
    if len(ratios) < 20 or max(ratios) >= 1e-3:
        return None
    return Finding(
        "vanishing_gradients",
        last.step,
        f"the first recurrent layer's gradient is {statistics.median(ratios):.2g} of the "
        "last one's (the median of the last 20 steps): the first layers hardly learn",
        "saturated gates (large weights or biases, or a learning rate that pushed them "
        "there), or a stack deeper than the data needs",
        "fewer layers (`num_layers`), a lower learning rate, or a fresh start from the "
        "default initialisation",
    )


def _first_to_last(norms: dict[str, float]) -> float | None:
    """The first stacked layer's gradient norm over the last's, or None."""
    stacks: dict[str, dict[int, float]] = {}
    for name, value in norms.items():
        stack, _, layer = name.rpartition(".l")
        if stack and layer.isdigit():
            stacks.setdefault(stack, {})[int(layer)] = value
    for layers in stacks.values():
        if len(layers) >= 2 and layers[max(layers)] > 0:
            return layers[min(layers)] / layers[max(layers)]
    return None


def split_mismatch(run: Run) -> Finding | None:
    """Given the labels of both sets (`Watcher.split`): the validation set holds one
    class only while training holds several, or the class shares differ by 0.25 or more
    (total variation distance)."""
    train, val, last = run.train_labels, run.val_labels, run.last
    if not train or not val:
        return None
    classes = set(train) | set(val)
    t_total, v_total = sum(train.values()), sum(val.values())
    distance = 0.5 * sum(abs(train.get(c, 0) / t_total - val.get(c, 0) / v_total) for c in classes)
    one = len([c for c in val if val[c]]) == 1 and len([c for c in train if train[c]]) > 1
    if not one and distance < 0.25:
        return None
    if one:
        (only,) = (c for c in val if val[c])
        seen = f"the validation targets are all class {only} ({v_total:,} of {v_total:,})"
    else:
        seen = f"the validation targets are {_shares(val)}"
    return Finding(
        "split_mismatch",
        last.step if last else 0,
        f"{seen}, while training has {_shares(train)}: the validation set measures "
        "something else than what is trained",
        "a validation set cut from the end of data ordered by class: Keras's "
        "`validation_split` (like any `data[-n:]`) takes the last examples as they are, "
        "before any shuffling",
        "shuffle the examples once before splitting them (`perm = torch.randperm(len(x))`, "
        "or `numpy.random.permutation(len(x))`; then `x, y = x[perm], y[perm]`), or split "
        "with stratification",
    )


def below_chance(run: Run) -> Finding | None:
    """At the last 2 validation accuracies reported (`val_accuracy`, `val_acc`): each
    below 1/C - 0.1 for C classes, i.e. worse than guessing."""
    c = run.classes
    values = run.metric("val_accuracy") or run.metric("val_acc")
    if not c or c < 2 or len(values) < 2:
        return None
    chance = 1 / c
    tail = values[-2:]
    if any(v >= chance - 0.1 for _, v in tail):
        return None
    also = (
        " (see split_mismatch: the validation labels are not like the training labels)"
        if "split_mismatch" in run.fired
        else ""
    )
    return Finding(
        "below_chance",
        tail[-1][0],
        f"the validation accuracy was {tail[0][1]:.3f} and {tail[1][1]:.3f} at the last two "
        f"evaluations, below the {chance:.3f} of guessing among {c} classes: the model is "
        f"confidently wrong on the validation set{also}",
        "validation labels distributed unlike the training labels (an unshuffled split), "
        "or labels encoded differently in the two sets",
        "check the class shares of both sets (`Watcher.split` does), and shuffle before splitting",
    )


def _chance_reached(run: Run) -> str | None:
    c = run.classes
    values = run.metric("val_accuracy") or run.metric("val_acc")
    if c and values and values[-1][1] >= 1 / c:
        return f"the validation accuracy reached {values[-1][1]:.3f} at step {values[-1][0]}"
    return None


def stuck_at_class_frequencies(run: Run) -> Finding | None:
    """A classification loss (a softmax or cross-entropy seen, or labels given) that has
    stayed, over the last 100 steps (at step 200 or later), within 3% of the entropy of
    the training labels (ln C without labels) and stopped falling (the mean of the last
    50 not below the 50 before by more than 0.005 and than twice the standard error of
    that difference): the model predicts how common each class is and nothing from its
    input. Not when no gradient reaches the model (`no_gradient`)."""
    last, c = run.last, run.classes
    if last is None or not c or c < 2 or last.step < 200 or "no_gradient" in run.fired:
        return None
    losses = run.losses(100)
    if len(losses) < 100:
        return None
    prior = _entropy(run.train_labels) if run.train_labels else math.log(c)
    now = statistics.fmean(losses[-50:])
    # still falling: by more than 0.005 and than twice the noise of two means of 50
    noise = 2 * statistics.pstdev(losses) * math.sqrt(2 / 50)
    if abs(now - prior) > 0.03 * prior or now < statistics.fmean(losses[:50]) - max(0.005, noise):
        return None
    what = (
        f"the entropy of the training labels ({_shares(run.train_labels)})"
        if run.train_labels
        else f"ln {c}"
    )
    causes = []
    for name, g in run.gates.items():
        if g.kind == "lstm" and g.forget is not None and g.length > 1:
            kept = g.forget**g.length
            causes.append(
                f"{name}'s forget gate averages {g.forget:.2f} (its bias {g.forget_bias:+.2f}): "
                f"after the {g.length} steps of a sequence, {kept:.1e} of what the first step "
                "wrote is left, so the first inputs cannot reach the output"
            )
    causes.append(
        "a learning rate too low for the loss to move, or inputs that carry no signal the "
        "model can use (unscaled, or unrelated to the labels)"
    )
    return Finding(
        "stuck_at_class_frequencies",
        last.step,
        f"the loss has stayed at {now:.3f} over the last {len(losses)} steps: {what} "
        f"({prior:.3f}): the model predicts how common each class is and nothing from "
        "its input",
        "; or ".join(causes),
        "for an LSTM that must carry its first inputs far, set its forget-gate bias to 1 "
        "(`lstm.bias_ih_l0.data[H:2*H].fill_(1.0)`, H its hidden size; Keras does this by "
        "default), or give it more units or shorter sequences; otherwise raise the "
        "learning rate, and scale the inputs to about unit size",
    )


def _loss_moved(run: Run) -> str | None:
    c = run.classes
    losses = run.losses(50)
    if not c or not losses:
        return None
    prior = _entropy(run.train_labels) if run.train_labels else math.log(c)
    now = statistics.fmean(losses)
    if now < prior - 0.1 * prior and run.last is not None:
        return f"by step {run.last.step} the loss had fallen to {now:.3f}"
    return None


@dataclass(frozen=True)
class Rule:
    """`fires` while its condition holds; `clears`, once it no longer does, how the run
    got past it. A rule read from the loss's outcome rather than measured at its cause
    waits `patience` steps of its condition holding before it fires (an early plateau
    is not a stuck run), or fires at the report if it still holds then."""

    fires: Callable[[Run], Finding | None]
    clears: Callable[[Run], str | None] | None = None
    patience: int = 1

    @property
    def name(self) -> str:
        return self.fires.__name__


RULES: tuple[Rule, ...] = (
    Rule(no_gradient, _gradients_arrived),
    Rule(gradients_accumulate, _accumulate_cleared),
    Rule(not_optimized),
    Rule(unused_parameters),
    Rule(bounded_softmax, _softmax_unbounded),
    Rule(exploding_gradients),
    Rule(vanishing_gradients),
    Rule(split_mismatch),
    Rule(below_chance, _chance_reached),
    Rule(stuck_at_class_frequencies, _loss_moved, patience=5000),
)
"""In the order they are checked, and reported when several fire at one step."""
