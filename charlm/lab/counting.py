"""Experiment `counting`: the loop that never zeroes its gradients.

The text is the count 0.00, 0.05, ... 1.00 on one line, repeated (`charlm corpus make
counting`); every value is followed by the next. Two set-ups train the same `CharRNN`
(one LSTM layer of 64 units, a projection, Adam) in the same loop, and differ only in
`optimizer.zero_grad()` and clipping: without `zero_grad` each step's gradient is the sum
of every gradient so far; clipping (at norm 1) then scales that sum down in place, so
the bug is run both with and without it. Scored on the held-out questions "the line up
to a value: what comes next?" with `answer_accuracy`: exact greedy answers, and the
probability of each answer (the product over its digits).
"""

from __future__ import annotations

from typing import Any

import torch

from charlm.diagnostics.findings import RunFacts
from charlm.diagnostics.references import ReferenceLevels
from charlm.diagnostics.report import diagnose_rows
from charlm.inference import Predictor
from charlm.lab.loop import LoopConfig, mean_loss, random_windows, train
from charlm.lab.report import LabReport, spread
from charlm.model import CharRNN, ModelConfig
from charlm.tasks import CountingConfig, answer_accuracy, make_task
from charlm.vocab import Vocabulary

__all__ = ["SETUPS", "run"]

SETUPS = {
    "gradients never zeroed, no clipping": LoopConfig(lr=0.01, zero_grad=False, clip=0),
    "gradients never zeroed, clipping at 1": LoopConfig(lr=0.01, zero_grad=False),
    "zero_grad every step, clipping at 1 (charlm)": LoopConfig(lr=0.01),
}
WINDOW, BATCH = 64, 32


def one_run(setup: str, seed: int, steps: int) -> dict[str, Any]:
    task = make_task("counting", CountingConfig(), seed)
    vocab = Vocabulary.from_text(task.train_text)
    ids = vocab.encode(task.train_text)
    torch.manual_seed(seed)
    model = CharRNN(
        ModelConfig(vocab_size=len(vocab), embedding_dim=16, hidden_size=64, num_layers=1)
    )
    config = LoopConfig(**{**SETUPS[setup].__dict__, "steps": steps})
    val = random_windows(ids, 64, WINDOW)(torch.Generator().manual_seed(10_000 + seed))
    rows = train(model, random_windows(ids, BATCH, WINDOW), config, seed=seed, validation=val)
    predictor = Predictor(model, vocab)
    result = answer_accuracy(predictor, task.heldout)
    per_item = [g.mean_answer_prob for g in result.groups if g.field == "index"]
    continued = predictor.predict("\n0.00,", top_k=1, continuation_length=100).continuation
    facts = RunFacts(ReferenceLevels.of_ids(ids), len(vocab), config.clip or None)
    diagnosis = diagnose_rows(rows, facts, setup)
    return {
        "setup": setup,
        "seed": seed,
        "steps": steps,
        "loss": mean_loss(model, *val),
        "accuracy": result.accuracy,
        "mean_answer_prob": result.mean_answer_prob,
        "min_answer_prob": min(per_item),
        "continuation": ("0.00," + continued).replace("\n", "\\n"),
        "findings": " ".join(f.name for f in diagnosis.findings),
        "_quote": [f.line() for f in sorted(diagnosis.findings, key=_explains)],
        "_curve": [(r["step"], r["loss"]) for r in rows if r["kind"] == "train"],
    }


def _explains(finding: Any) -> int:
    """The finding that names a missing zero_grad first."""
    return 0 if finding.name == "exploding_gradients" else 1


def run(quick: bool, repeats: int | None) -> LabReport:
    seeds = range(repeats or (2 if quick else 5))
    steps = 400 if quick else 1500
    runs = [one_run(setup, seed, steps) for setup in SETUPS for seed in seeds]
    table, notes = [], []
    for setup in SETUPS:
        group = [r for r in runs if r["setup"] == setup]
        table.append(
            {
                "set-up": setup,
                "loss (nats)": spread([r["loss"] for r in group]),
                "exact answers": spread([r["accuracy"] for r in group], 3),
                "mean p(answer)": spread([r["mean_answer_prob"] for r in group]),
                "min p(answer)": spread([r["min_answer_prob"] for r in group]),
                "diagnosis": ", ".join(sorted({f for r in group for f in r["findings"].split()}))
                or "none",
            }
        )
        first = group[0]
        notes.append(f"'{setup}', seed 0, greedy from `0.00,`: `{first['continuation']}`")
        if first["_quote"]:
            notes.append(f"Diagnosis of '{setup}' (seed 0): {first['_quote'][0]}")
    curves = {(r["setup"], r["seed"]): r["_curve"] for r in runs}
    report = LabReport(
        name="counting",
        title="Counting: gradients that are never zeroed",
        columns=list(table[0]),
        table=table,
        runs=runs,
        notes=notes,
    )
    report.draw = lambda fig: _draw(fig, curves)
    return report


def _draw(fig: Any, curves: dict[tuple[str, int], list[tuple[int, float]]]) -> None:
    ax = fig.add_subplot(1, 1, 1)
    colours = dict(zip(SETUPS, ("tab:red", "tab:orange", "tab:blue"), strict=True))
    for (setup, seed), points in curves.items():
        steps, losses = zip(*points, strict=True)
        ax.plot(steps, losses, color=colours[setup], alpha=0.7, label=setup if seed == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/char)")
    ax.legend()
    ax.set_title("Counting: each seed's training loss")
