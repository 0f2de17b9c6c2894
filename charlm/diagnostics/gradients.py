"""Detectors of a run's gradients, from the norms it logged: `exploding_gradients`
(from the total norm before clipping, and the share of steps clipped) and
`vanishing_gradients` (from the norms of each recurrent layer). Their rules are in
their docstrings; what each needs, in `detectors.DETECTORS`."""

from __future__ import annotations

import bisect
import math
import re
import statistics
from typing import TYPE_CHECKING

from charlm.diagnostics.curve import advice
from charlm.diagnostics.findings import Finding, finite

if TYPE_CHECKING:
    from charlm.diagnostics.record import RunRecord

__all__ = ["exploding_gradients", "vanishing_gradients"]

_LAYER = re.compile(r"(lstm|gru|rnn)\.l\d+")
"""A recurrent layer's parameter group in a row's `grad_norms`."""


def exploding_gradients(h: RunRecord) -> Finding | None:
    """Any of: a logged gradient norm before clipping over 1,000x the clipping threshold;
    after step 100, over 90% of the steps in the last 5 logging intervals clipped (the
    threshold hides a gradient that would grow: a healthy run clips only now and then);
    with 8 or more norms logged, their median over the last tenth of the steps over 5x
    their median over the first tenth (each stretch holding at least 3 of them) and,
    when the log has the share, over half of the recent steps clipped."""
    norms = h.grad_norms
    last = h.train[-1]
    step = last.step
    clip = h.facts.clip
    if norms and clip and finite(last.grad_norm) and norms[-1] > 1000 * clip:
        seen = (
            f"the gradient norm before clipping reached {norms[-1]:.3g}, "
            f"{norms[-1] / clip:,.0f}x the clipping threshold {clip:g}"
        )
        return _exploding(h, step, seen)
    shares = [r.signals.clipped for r in h.train[-5:] if finite(r.signals.clipped)]
    if step > 100 and len(shares) == 5 and statistics.fmean(shares) > 0.9:
        recent_norm = statistics.median(norms[-5:]) if norms else math.nan
        against = f" against the threshold {clip:g}" if clip else ""
        seen = (
            f"{statistics.fmean(shares):.0%} of the steps in the last 5 logging intervals "
            f"were clipped (gradient norm before clipping {recent_norm:.3g}{against}): "
            "clipping holds down a gradient that would otherwise grow"
        )
        return _exploding(h, step, seen)
    if len(norms) < 8:
        return None
    first_step, tenth = h.norm_steps[0], (step - h.norm_steps[0]) / 10
    early_part = norms[: max(3, bisect.bisect_right(h.norm_steps, first_step + tenth))]
    recent_part = norms[min(len(norms) - 3, bisect.bisect_left(h.norm_steps, step - tenth)) :]
    early, recent = statistics.median(early_part), statistics.median(recent_part)
    clipped = [r.signals.clipped for r in h.train[-3:] if finite(r.signals.clipped)]
    if early <= 0 or recent <= 5 * early or (clipped and statistics.fmean(clipped) <= 0.5):
        return None
    share = f"; {statistics.fmean(clipped):.0%} of recent steps were clipped" if clipped else ""
    seen = (
        f"the gradient norm before clipping grew {recent / early:.0f}x, from {early:.3g} "
        f"to {recent:.3g}{share}"
    )
    return _exploding(h, step, seen)


def _exploding(h: RunRecord, step: int, seen: str) -> Finding:
    return Finding(
        "exploding_gradients",
        step,
        seen,
        "gradients that are never cleared between steps (a missing zero_grad: they add "
        "up), a learning rate too high, or long windows without clipping",
        advice(
            h,
            "in a loop of your own, clear the gradients before every backward pass; in "
            "charlm, lower --lr or --clip",
            "call optimizer.zero_grad() before every loss.backward(); if it is there, clip "
            "the gradient (torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0) before "
            "optimizer.step()) and lower the learning rate",
        ),
    )


def vanishing_gradients(h: RunRecord) -> Finding | None:
    """With two or more LSTM layers and per-layer gradient norms logged: after step 100,
    the first layer's gradient norm is under 1% of the last layer's in each of the last
    3 logged values: the first layers hardly learn."""
    rows = h.train[-3:]
    ratios = []
    for r in rows:
        norms = r.signals.grad_norms
        if norms is None:
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
    gates = rows[-1].signals.gates
    saturated = ""
    if gates is not None and "l0" in gates:
        shares = [g.saturated for g in gates["l0"].values() if finite(g.saturated)]
        if shares:
            saturated = f"; {max(shares):.0%} of the first layer's gate units are saturated"
    return Finding(
        "vanishing_gradients",
        rows[-1].step,
        f"the first LSTM layer's gradient is {statistics.median(ratios):.2g} of the last "
        f"layer's{saturated}",
        "saturated gates (large weights or biases, a learning rate that pushed them "
        "there), or a stack deeper than the data needs",
        advice(
            h,
            "fewer --num-layers, a lower --lr, or a fresh run from the default initialisation",
            "fewer layers, a lower learning rate, or a fresh run from the default initialisation",
        ),
    )
