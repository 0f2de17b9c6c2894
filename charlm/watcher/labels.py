"""The watcher's rules for a classifier given the labels of both sets (`Watcher.split`)
or its accuracy: `split_mismatch`, `below_chance` and `stuck_at_class_frequencies`, each
with how the run gets past it. The other rules, and their order, are in `rules`."""

from __future__ import annotations

import math
import statistics

from charlm.diagnostics.findings import Finding
from charlm.watcher.record import Run

__all__ = [
    "below_chance",
    "chance_reached",
    "loss_moved",
    "split_mismatch",
    "stuck_at_class_frequencies",
]


def _shares(counts: dict[int, int]) -> str:
    total = sum(counts.values())
    parts = sorted(counts.items(), key=lambda kv: -kv[1])
    return ", ".join(f"class {c} {n / total:.1%}" for c, n in parts[:6])


def _entropy(counts: dict[int, int]) -> float:
    total = sum(counts.values())
    return -sum(n / total * math.log(n / total) for n in counts.values() if n)


# -- the rules ------------------------------------------------------------------------


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


def chance_reached(run: Run) -> str | None:
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
                "wrote is left, so little of the first inputs reaches the output"
            )
    causes.append(
        "a model that cannot carry its inputs as far as the labels need (few units, long sequences)"
    )
    causes.append(
        "training batches drawn in class order (data sorted by class and not shuffled "
        "before batching: each batch teaches its own class, then the next undoes it)"
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
        "default), or give it more units or shorter sequences; shuffle the training data "
        "before batching if it is ordered by class (`DataLoader(..., shuffle=True)`); "
        "otherwise raise the learning rate, and scale the inputs to about unit size",
    )


def loss_moved(run: Run) -> str | None:
    c = run.classes
    losses = run.losses(50)
    if not c or not losses:
        return None
    prior = _entropy(run.train_labels) if run.train_labels else math.log(c)
    now = statistics.fmean(losses)
    if now < prior - 0.1 * prior and run.last is not None:
        return f"by step {run.last.step} the loss had fallen to {now:.3f}"
    return None
