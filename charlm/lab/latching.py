"""Experiment `latching` (Bengio, Simard and Frasconi, 1994): carry one symbol across a gap.

A line is a key (A or B), N noise symbols from `abcd`, `=`, then the label, which is the
key: the format of `charlm corpus make latch`. For each cell (rnn, lstm, gru) and gap N,
every repeat trains a one-layer model of 16 units on 500 lines of its own, scored at the
label (the loss is taken there only, as in the 1994 experiment): 1,500 steps of 16
lines, Adam at 0.01, each model's gradient clipped at norm 1, PyTorch's initialisation
(an LSTM's forget gate starts near 0.5). Two ways to hold out data:

- "tail split": the 500 lines generated positives (A) first, negatives (B) last, and the
  last 20% held out, so validation holds B only and training is 5/8 A;
- "shuffled split": the lines shuffled and 20% held out balanced, 50 A and 50 B.

A model succeeds when it answers at least 95% of a set right. Each repeat is also scored
on 200 balanced, freshly drawn lines (the test set), the same for both splits. All
repeats and both splits of a (cell, gap) point train together as one `BatchedCells`.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from charlm.lab.batched import BatchedCells, clip_per_model, key_gradient
from charlm.lab.report import LabReport

__all__ = ["CELL_ORDER", "SPLITS", "latch_point", "run"]

CELL_ORDER = ("rnn", "lstm", "gru")
SPLITS = ("tail", "shuffled")
SYMBOLS = "AB" + "abcd" + "="
A, B, NOISE, EQUALS = 0, 1, (2, 3, 4, 5), 6
LINES, HELD, TEST, BATCH, HIDDEN = 500, 100, 200, 16, 16
SUCCESS = 0.95


def lines(labels: torch.Tensor, gap: int, rng: torch.Generator) -> torch.Tensor:
    """Sequences (..., gap + 2): key = label, `gap` noise symbols, '='."""
    noise = torch.randint(NOISE[0], NOISE[-1] + 1, (*labels.shape, gap), generator=rng)
    equals = torch.full((*labels.shape, 1), EQUALS)
    return torch.cat([labels.unsqueeze(-1), noise, equals], -1)


def split_data(
    split: str, repeats: int, gap: int, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training and validation lines and labels, (repeats, n, T) and (repeats, n)."""
    half = LINES // 2
    labels = torch.cat([torch.full((repeats, half), A), torch.full((repeats, half), B)], 1)
    if split == "shuffled":  # balanced held-out lines from each class, the rest shuffled
        order = torch.stack([_balanced_order(rng) for _ in range(repeats)])
        labels = labels.gather(1, order)
    seqs = lines(labels, gap, rng)
    n = LINES - HELD
    return seqs[:, :n], labels[:, :n], seqs[:, n:], labels[:, n:]


def _balanced_order(rng: torch.Generator) -> torch.Tensor:
    """A permutation of the A-first lines whose last HELD places hold HELD/2 of each."""
    half = LINES // 2
    a, b = torch.randperm(half, generator=rng), torch.randperm(half, generator=rng) + half
    k = HELD // 2
    held = torch.cat([a[:k], b[:k]])
    rest = torch.cat([a[k:], b[k:]])
    return torch.cat([rest[torch.randperm(rest.numel(), generator=rng)], held])


def latch_point(
    cell: str, gap: int, repeats: int, steps: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Train `repeats` models per split for one (cell, gap); a row per model."""
    rng = torch.Generator().manual_seed(seed * 1_000 + gap)
    data = [split_data(split, repeats, gap, rng) for split in SPLITS]
    x_train = torch.cat([d[0] for d in data])  # (R, n, T), R = repeats per split x splits
    y_train = torch.cat([d[1] for d in data])
    test_labels = torch.cat(
        [torch.full((repeats, TEST // 2), A), torch.full((repeats, TEST // 2), B)], 1
    )
    x_test = lines(test_labels, gap, rng).repeat(len(SPLITS), 1, 1)
    y_test = test_labels.repeat(len(SPLITS), 1)
    R = x_train.shape[0]
    torch.manual_seed(seed * 1_000 + gap)
    model = BatchedCells(cell, R, len(SYMBOLS), HIDDEN)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    rows_of = torch.arange(R).unsqueeze(1)
    at_start = key_gradient(model, x_test[:, :64], y_test[:, :64])
    for _ in range(steps):
        pick = torch.randint(0, x_train.shape[1], (R, BATCH), generator=rng)
        logits = model(x_train[rows_of, pick])  # (R, B, V)
        loss = F.cross_entropy(logits.reshape(-1, len(SYMBOLS)), y_train[rows_of, pick].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        clip_per_model(model, 1.0)
        optimizer.step()
    with torch.no_grad():
        x_val = torch.cat([d[2] for d in data])
        y_val = torch.cat([d[3] for d in data])
        val_acc = (model(x_val).argmax(-1) == y_val).float().mean(1)
        test_acc = (model(x_test).argmax(-1) == y_test).float().mean(1)
    at_end = key_gradient(model, x_test[:, :64], y_test[:, :64])
    rows = []
    for r in range(R):
        rows.append(
            {
                "cell": cell,
                "gap": gap,
                "split": SPLITS[r // repeats],
                "repeat": r % repeats,
                "steps": steps,
                "val_acc": round(float(val_acc[r]), 4),
                "test_acc": round(float(test_acc[r]), 4),
                "val_success": int(val_acc[r] >= SUCCESS),
                "test_success": int(test_acc[r] >= SUCCESS),
                "key_grad_start": float(f"{float(at_start[r]):.3g}"),
                "key_grad_end": float(f"{float(at_end[r]):.3g}"),
            }
        )
    return rows


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny batched products run fastest on one thread (and fairest on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(quick: bool, repeats: int | None) -> LabReport:
    gaps = [2, 10, 20, 50] if quick else [2, 5, 10, 20, 50, 100, 200]
    n = repeats or (5 if quick else 30)
    steps = 1500
    runs: list[dict[str, Any]] = []
    with _one_thread():
        for cell in CELL_ORDER:
            for gap in gaps:
                runs.extend(latch_point(cell, gap, n, steps))
    table = []
    for cell in CELL_ORDER:
        for split in SPLITS:
            row: dict[str, Any] = {"cell": cell, "split": split}
            for gap in gaps:
                group = [r for r in runs if (r["cell"], r["split"], r["gap"]) == (cell, split, gap)]
                test = sum(r["test_success"] for r in group) / len(group)
                val = statistics.fmean(r["val_acc"] for r in group)
                row[f"N={gap}"] = f"{test:.2f} (val {val:.2f})"
            table.append(row)
    notes = [
        f"Each cell: the share of {n} repeats that answer at least {SUCCESS:.0%} of the "
        "balanced test set right, and (val) their mean accuracy on their split's own "
        f"validation set. {steps} steps of {BATCH} lines per model."
    ]
    missed = [r for r in runs if not r["test_success"]]
    for split in SPLITS:
        accs = [r["val_acc"] for r in missed if r["split"] == split]
        if accs:
            notes.append(
                f"The {len(accs)} models of the {split} split that did not latch score "
                f"{statistics.fmean(accs):.3f} on their validation set on average."
            )
    for cell in CELL_ORDER:
        start = []
        for gap in gaps:
            ratios = [r["key_grad_start"] for r in runs if (r["cell"], r["gap"]) == (cell, gap)]
            start.append(f"N={gap}: {statistics.median(ratios):.2g}")
        notes.append(
            f"{cell}: the share of the loss's gradient that reaches the key before training "
            "(|d loss/d input| at the first step over the last, median) " + ", ".join(start)
        )
    report = LabReport(
        name="latching",
        title="Information latching: success rate against the gap",
        columns=["cell", "split", *(f"N={g}" for g in gaps)],
        table=table,
        runs=runs,
        notes=notes,
    )
    report.draw = lambda fig: _draw(fig, runs, gaps)
    return report


def _wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson interval of a success rate."""
    if n == 0:
        return 0.0, 1.0
    z, p = 1.96, successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _draw(fig: Any, runs: list[dict[str, Any]], gaps: list[int]) -> None:
    colours = dict(zip(CELL_ORDER, ("tab:red", "tab:blue", "tab:green"), strict=True))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for c, cell in enumerate(CELL_ORDER):
        for s, (split, style) in enumerate(zip(SPLITS, ("--", "-"), strict=True)):
            shift = 1.0 + 0.025 * (2 * c + s - 2.5)  # side by side, not on top
            xs = [g * shift for g in gaps]
            mean, sd, rates, below, above = [], [], [], [], []
            for gap in gaps:
                group = [r for r in runs if (r["cell"], r["split"], r["gap"]) == (cell, split, gap)]
                accs = [r["val_acc"] for r in group]
                mean.append(statistics.fmean(accs))
                sd.append(statistics.pstdev(accs))
                wins = sum(r["test_success"] for r in group)
                low, high = _wilson(wins, len(group))
                rates.append(wins / len(group))
                below.append(rates[-1] - low)
                above.append(high - rates[-1])
            style_args = {"fmt": style, "marker": "o", "markersize": 4, "capsize": 2,
                          "elinewidth": 0.8, "color": colours[cell]}  # fmt: skip
            left.errorbar(xs, mean, yerr=sd, label=f"{cell}, {split} split", **style_args)
            right.errorbar(xs, rates, yerr=[below, above], **style_args)
    left.set_title("Mean validation accuracy, as each split reports it (±1 sd)", fontsize=9)
    left.set_ylabel("accuracy on the split's validation set")
    left.legend(fontsize=7)
    right.set_title(f"Success: >= {SUCCESS:.0%} of a balanced test set (95% interval)", fontsize=9)
    right.set_ylabel("share of repeats")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(gaps, [str(g) for g in gaps])
        ax.minorticks_off()
        ax.set_xlabel("gap N (noise symbols between key and label)")
        ax.set_ylim(-0.03, 1.03)
