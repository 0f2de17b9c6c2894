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
from collections.abc import Callable
from dataclasses import dataclass

from charlm.diagnostics.findings import Finding
from charlm.diagnostics.references import bounded_softmax_cap
from charlm.watcher import labels
from charlm.watcher.record import Run, Site

__all__ = ["RULES", "Rule"]


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
    if norms and now and now >= 2 * norms[0]:  # clipped in place, a norm shows no growth
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
        "`loss.backward()` adds to the old gradients instead of replacing them; each step "
        "then follows the sum of every gradient so far, and the loss swings",
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
        "a layer the forward pass never uses, a part of the forward pass run under "
        "`torch.no_grad()` or cut from the graph with `.detach()`, or an output the loss "
        "never reads",
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
    not growing (by 0.02 or more against the 50 before); never fed by a matrix product
    (a linear layer's output is small before it learns, not bounded)."""
    for site in run.sites.values():
        if site.over_at is not None or site.projected or site.steps < 100 or site.classes < 2:
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
    Rule(labels.split_mismatch),
    Rule(labels.below_chance, labels.chance_reached),
    Rule(labels.stuck_at_class_frequencies, labels.loss_moved, patience=5000),
)
"""In the order they are checked, and reported when several fire at one step."""
