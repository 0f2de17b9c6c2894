"""Experiment `functions`: which function drew these points?

Each line is points (x, y) of a line, a parabola or a square root, then the function's
name (`charlm corpus make functions`). Three set-ups train the same `CharRNN` (one LSTM
layer of 128 units, Adam, clipping) in the same loop and differ only in their data:

- "new task per batch, labels drawn apart": every batch is freshly generated, and the
  name on each line is drawn separately from the function that made its points (the
  classic generator bug: two random draws where there should be one);
- "8 points per line only": a fixed, seeded corpus, every line with 8 points;
- "fixed corpus, 1-8 points (charlm)": a fixed, seeded corpus, 1 to 8 points per line.

All are scored on the same held-out questions, 1 to 12 points (more than any line of
training had), balanced across the three functions: chance is 1/3.
"""

from __future__ import annotations

import random
import statistics
from typing import Any

import torch

from charlm.inference import Predictor
from charlm.lab.loop import Batches, LoopConfig, random_windows, train
from charlm.lab.report import LabReport, spread
from charlm.model import CharRNN, ModelConfig
from charlm.tasks import FUNCTIONS, FunctionsConfig, answer_accuracy, make_task
from charlm.vocab import Vocabulary

__all__ = ["SETUPS", "run"]

SETUPS = {
    "new task per batch, labels drawn apart": "1-8",
    "8 points per line only": "8",
    "fixed corpus, 1-8 points (charlm)": "1-8",
}
WINDOW, BATCH = 96, 32
LOOP = LoopConfig(lr=0.01)


def mismatched_batches(vocab: Vocabulary, seed: int) -> Batches:
    """A new task every batch, its names drawn apart from its points."""
    names = list(FUNCTIONS)
    count = [0]

    def draw(rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        count[0] += 1
        config = FunctionsConfig(lines=BATCH, heldout_per_class=1, heldout_points="1")
        text = make_task("functions", config, seed * 1_000_003 + count[0]).train_text
        relabel = random.Random(seed * 7_919 + count[0])
        text = "".join(
            line.rsplit("=", 1)[0] + "=" + relabel.choice(names) + "\n"
            for line in text.splitlines()
        )
        return random_windows(vocab.encode(text), BATCH, WINDOW)(rng)

    return draw


def one_run(setup: str, seed: int, steps: int) -> dict[str, Any]:
    heldout = make_task("functions", FunctionsConfig(), seed).heldout
    text = make_task("functions", FunctionsConfig(points=SETUPS[setup]), seed).train_text
    vocab = Vocabulary.from_text(text + "".join(i.prompt + i.answer for i in heldout))
    if setup.startswith("new task"):
        batches = mismatched_batches(vocab, seed)
    else:
        batches = random_windows(vocab.encode(text), BATCH, WINDOW)
    torch.manual_seed(seed)
    model = CharRNN(
        ModelConfig(vocab_size=len(vocab), embedding_dim=16, hidden_size=128, num_layers=1)
    )
    train(model, batches, LoopConfig(**{**LOOP.__dict__, "steps": steps}), seed=seed)
    result = answer_accuracy(Predictor(model, vocab), heldout, by=["points"])
    row: dict[str, Any] = {"setup": setup, "seed": seed, "steps": steps}
    row["accuracy"] = result.accuracy
    for g in result.groups:
        row[f"acc_{g.value}"] = g.accuracy
    return row


def run(quick: bool, repeats: int | None) -> LabReport:
    seeds = range(repeats or (2 if quick else 3))
    steps = 800 if quick else 3000
    runs = [one_run(setup, seed, steps) for setup in SETUPS for seed in seeds]
    points = sorted(int(k[4:]) for k in runs[0] if k.startswith("acc_"))
    shown = [1, 2, 4, 8, 12] if 12 in points else points
    table = []
    for setup in SETUPS:
        group = [r for r in runs if r["setup"] == setup]
        row = {"set-up": setup, "all": spread([r["accuracy"] for r in group], 3)}
        for n in shown:
            row[f"{n} pt"] = spread([r[f"acc_{n}"] for r in group], 3)
        table.append(row)
    report = LabReport(
        name="functions",
        title="Which function? Accuracy by number of points given",
        columns=["set-up", "all", *(f"{n} pt" for n in shown)],
        table=table,
        runs=runs,
        notes=[
            f"Held-out: {len(points)} point counts x 3 functions x 20 items; chance is 0.333. "
            "Columns: exact-answer accuracy, median over seeds (range)."
        ],
    )
    report.draw = lambda fig: _draw(fig, runs, points)
    return report


def _draw(fig: Any, runs: list[dict[str, Any]], points: list[int]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    for setup in SETUPS:
        group = [r for r in runs if r["setup"] == setup]
        mid = [statistics.median(r[f"acc_{n}"] for r in group) for n in points]
        low = [min(r[f"acc_{n}"] for r in group) for n in points]
        high = [max(r[f"acc_{n}"] for r in group) for n in points]
        (line,) = ax.plot(points, mid, marker="o", label=setup)
        ax.fill_between(points, low, high, color=line.get_color(), alpha=0.15)
    ax.axhline(1 / 3, color="grey", linestyle=":", label="chance")
    ax.axvline(8.5, color="grey", linestyle="--", linewidth=0.8)
    ax.text(8.6, 0.05, "more points than\nany training line", fontsize=8)
    ax.set_xlabel("points given")
    ax.set_ylabel("exact-answer accuracy (median, range over seeds)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Which function?")
