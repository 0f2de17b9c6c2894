"""Experiment `functions` (post 001): which function drew these points?

A sequence is 8 points (x, y) of one function, in the order drawn: a line y = kx + b or
a parabola y = kx^2 + b (x uniform in [5, 15]), or a root y = k sqrt(x) + b (x in
[5, 10]), the function chosen at random, k uniform in [0, 1) and b in [0, 5), the
inputs unscaled. An `nn.LSTM` of 100 units reads the points, a linear layer and a
log-softmax name the function after every point, and the loss is the mean NLL over the
8 points; plain SGD at 1e-3, one sequence a step, as posted. Four set-ups differ in one
thing each:

- "as posted": k and b redrawn for every sequence, and no `loss.backward()` (the posted
  loop's update has no backward before it), so the optimizer steps with no gradient;
- "k and b redrawn": the same with backward;
- "k and b fixed at the start": drawn once per run, as the post's answer does (its fix);
- "labels drawn apart": k and b redrawn, and the label drawn apart from the function
  that drew the points (two random draws where there should be one): nothing to learn,
  the control for what "cannot learn any features" looks like.

Trained on 8 points and tested, as posted, on the first 4 of 600 fresh sequences drawn
the way the set-up draws them (labels right); accuracy is also read after each point
from 1 to 8, and on sequences with k and b redrawn, which tells a model that tells the
functions apart from one that knows one curve of each. Chance is 1/3.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from charlm.lab.loop import LoopConfig, train
from charlm.lab.report import LabReport, Said, heard, spread, tally

__all__ = ["SETUPS", "Classifier", "run", "sequences"]

AS_POSTED = LoopConfig(optimizer="sgd", lr=1e-3)
SETUPS = {
    "as posted: k and b redrawn, no backward": ("redrawn", AS_POSTED.replace(backward=False)),
    "k and b redrawn for every sequence": ("redrawn", AS_POSTED),
    "k and b fixed at the start (the post's fix)": ("fixed", AS_POSTED),
    "labels drawn apart from the points": ("apart", AS_POSTED),
}
POINTS, TESTED, TEST = 8, 4, 600
FUNCTIONS = ("line", "parabola", "root")


def sequences(
    n: int, points: int, rng: torch.Generator, kb: tuple[float, float] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences of `points` points (x, y), (n, points, 2), and their functions'
    classes (n,): 0 line, 1 parabola, 2 root. k and b are drawn for each sequence, or
    are `kb` for all."""
    classes = torch.randint(0, 3, (n,), generator=rng)
    if kb is None:
        k, b = torch.rand(n, 1, generator=rng), torch.rand(n, 1, generator=rng) * 5
    else:
        k, b = torch.full((n, 1), kb[0]), torch.full((n, 1), kb[1])
    u = torch.rand(n, points, generator=rng)
    root = (classes == 2).unsqueeze(1)
    x = torch.where(root, u * 5 + 5, u * 10 + 5)
    shape = torch.stack([x, x * x, x.sqrt()])[classes, torch.arange(n)]  # (n, points)
    return torch.stack([x, k * shape + b], -1), classes


class Classifier(nn.Module):
    """`nn.LSTM(2, 100)`, a linear layer and a log-softmax after every point."""

    def __init__(self, hidden_size: int = 100) -> None:
        super().__init__()
        self.lstm = nn.LSTM(2, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, len(FUNCTIONS))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, T, 2) -> log-probabilities of each function after each point, (B, T, 3)."""
        h, _ = self.lstm(points)
        return torch.log_softmax(self.out(h), -1)


def nll_every_point(log_probs: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """The mean NLL of the sequence's class, over every point read."""
    labels = classes.unsqueeze(1).expand(log_probs.shape[:2])
    return F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), labels.reshape(-1))


def one_run(setup: str, seed: int, steps: int) -> dict[str, Any]:
    data, loop = SETUPS[setup]
    start = torch.Generator().manual_seed(seed)
    drawn = torch.rand(2, generator=start)
    kb = (float(drawn[0]), float(drawn[1]) * 5) if data == "fixed" else None

    def batch(rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        points, classes = sequences(1, POINTS, rng, kb)
        if data == "apart":
            classes = torch.randint(0, 3, (1,), generator=rng)
        return points, classes

    test = torch.Generator().manual_seed(10_000 + seed)
    points, classes = sequences(TEST, POINTS, test, kb)
    redrawn_points, redrawn_classes = sequences(TEST, TESTED, test)
    torch.manual_seed(seed)
    model = Classifier()
    with torch.no_grad():
        untrained = (model(points)[:, TESTED - 1].argmax(-1) == classes).float().mean()
    trained = train(model, batch, nll_every_point, loop.replace(steps=steps), seed=seed)
    with torch.no_grad():
        right = (model(points).argmax(-1) == classes.unsqueeze(1)).float().mean(0)  # (points,)
        redrawn = (model(redrawn_points)[:, -1].argmax(-1) == redrawn_classes).float().mean()
    row: dict[str, Any] = {"setup": setup, "seed": seed, "steps": steps}
    row["untrained_accuracy"] = float(untrained)
    row["accuracy"] = float(right[TESTED - 1])
    row["redrawn_accuracy"] = float(redrawn)
    for n in range(1, POINTS + 1):
        row[f"acc_{n}"] = float(right[n - 1])
    row["watcher"] = heard(trained.findings)
    row["_findings"] = trained.findings
    return row


def run(quick: bool, repeats: int | None) -> LabReport:
    seeds = range(repeats or (2 if quick else 5))
    steps = 1500 if quick else 5000
    runs = [one_run(setup, seed, steps) for setup in SETUPS for seed in seeds]
    table, said = [], []
    for setup in SETUPS:
        group = [r for r in runs if r["setup"] == setup]
        table.append(
            {
                "set-up": setup,
                f"untrained, {TESTED} points": spread([r["untrained_accuracy"] for r in group], 3),
                "1 point": spread([r["acc_1"] for r in group], 3),
                f"{TESTED} points (tested)": spread([r["accuracy"] for r in group], 3),
                f"{POINTS} points": spread([r[f"acc_{POINTS}"] for r in group], 3),
                f"{TESTED} points, k and b redrawn": spread(
                    [r["redrawn_accuracy"] for r in group], 3
                ),
                "watcher": tally([r["watcher"] for r in group]),
            }
        )
        said.append(Said(setup, "seed 0", group[0]["_findings"]))
    notes = [
        f"Accuracy naming the function after the first 1, {TESTED} and {POINTS} points of "
        f"{TEST} fresh sequences drawn as the set-up draws them (labels right), and after "
        f'{TESTED} points of sequences with k and b redrawn; "untrained": the same model '
        f"before its first step. Chance is 0.333. {steps} steps of one sequence; median over "
        "seeds (range)."
    ]
    report = LabReport(
        name="functions",
        title="Which function? Trained on 8 points, tested on 4",
        columns=list(table[0]),
        table=table,
        runs=runs,
        notes=notes,
        said=said,
    )
    report.draw = lambda fig: _draw(fig, runs)
    return report


def _draw(fig: Any, runs: list[dict[str, Any]]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    points = list(range(1, POINTS + 1))
    for setup in SETUPS:
        group = [r for r in runs if r["setup"] == setup]
        mid = [statistics.median(r[f"acc_{n}"] for r in group) for n in points]
        low = [min(r[f"acc_{n}"] for r in group) for n in points]
        high = [max(r[f"acc_{n}"] for r in group) for n in points]
        (line,) = ax.plot(points, mid, marker="o", label=setup)
        ax.fill_between(points, low, high, color=line.get_color(), alpha=0.15)
    ax.axhline(1 / 3, color="grey", linestyle=":", label="chance")
    ax.axvline(TESTED, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("points read")
    ax.set_ylabel("accuracy (median, range over seeds)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Which function? Accuracy after each point")
