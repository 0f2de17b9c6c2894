"""Experiment `alphabet-head` (post 003): the softmax taken straight of the LSTM's output.

Three cycles (26 letters in 26-step windows, `ab` in 4-step windows, 56 symbols in
56-step windows), each learned by three set-ups that share the LSTM (one unit per
symbol, after a 16-wide embedding) and differ only as named:

- "as posted": the LSTM's output is the softmax's input (the cross-entropy of its
  softmax is the loss), trained with SGD at momentum 0.2 and no clipping;
- the same head with Adam and clipping at 1: the optimiser changed, the head not;
- "a linear projection": a linear layer between the LSTM and the softmax (the post's
  fix, charlm's `CharRNN`), trained as posted.

Every window is read from zero state; every next symbol is determined by the one
before, so a model can reach certainty at every step. Each run is watched.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from charlm.diagnostics.references import bounded_softmax_cap, bounded_softmax_floor
from charlm.lab.broken import SoftmaxOnOutput
from charlm.lab.loop import LoopConfig, cross_entropy, random_windows, train
from charlm.lab.report import LabReport, Said, heard, spread, tally
from charlm.model import CharRNN, ModelConfig
from charlm.tasks import CycleConfig, make_task
from charlm.vocab import Vocabulary

__all__ = ["SETUPS", "TASKS", "run"]

TASKS = ((26, 26), (2, 4), (56, 56))
"""(symbols, window length)."""
AS_POSTED = LoopConfig(optimizer="sgd", lr=0.5, momentum=0.2)
SETUPS = {
    "as posted: softmax of the LSTM output, SGD": ("softmax", AS_POSTED),
    "softmax of the LSTM output, Adam, clipping at 1": (
        "softmax",
        LoopConfig(lr=0.03, clip=1.0),
    ),
    "a linear projection before the softmax, SGD (the fix)": ("projection", AS_POSTED),
}
BATCH = 32


def build(head: str, symbols: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if head == "softmax":
        return SoftmaxOnOutput(symbols)
    config = ModelConfig(vocab_size=symbols, embedding_dim=16, hidden_size=symbols, num_layers=1)
    return CharRNN(config)


def one_run(symbols: int, window: int, setup: str, seed: int, steps: int) -> dict[str, Any]:
    head, loop = SETUPS[setup]
    text = make_task(
        "cycle", CycleConfig(symbols=symbols, length=20 * symbols + 200), seed
    ).train_text
    ids = Vocabulary.from_text(text).encode(text)
    model = build(head, symbols, seed)
    trained = train(
        model,
        random_windows(ids, BATCH, window),
        cross_entropy,
        loop.replace(steps=steps),
        seed=seed,
    )
    val_x, val_y = random_windows(ids, 64, window)(torch.Generator().manual_seed(10_000 + seed))
    with torch.no_grad():
        logits, _ = model(val_x)  # (B, T, K)
        loss = float(cross_entropy(logits, val_y))
    probs = torch.softmax(logits, -1)
    right = probs.gather(-1, val_y.unsqueeze(-1)).squeeze(-1)
    return {
        "task": f"{symbols} symbols, {window}-step windows",
        "symbols": symbols,
        "setup": setup,
        "seed": seed,
        "steps": steps,
        "loss": loss,
        "p_right": float(right.mean()),
        "p_right_max": float(right.max()),
        "p_right_min": float(right.min()),
        "top1": float((probs.argmax(-1) == val_y).float().mean()),
        "right_output_max": float(logits.gather(-1, val_y.unsqueeze(-1)).max()),
        "watcher": heard(trained.findings),
        "_findings": trained.findings,
    }


def run(quick: bool, repeats: int | None) -> LabReport:
    seeds = range(repeats or (2 if quick else 5))
    steps = 400 if quick else 1000
    runs = [
        one_run(k, w, setup, seed, steps) for k, w in TASKS for setup in SETUPS for seed in seeds
    ]
    table, said = [], []
    for k, _ in TASKS:
        for setup in SETUPS:
            group = [r for r in runs if r["symbols"] == k and r["setup"] == setup]
            softmax = SETUPS[setup][0] == "softmax"
            table.append(
                {
                    "task": group[0]["task"],
                    "set-up": setup,
                    "loss (nats)": spread([r["loss"] for r in group]),
                    "floor": f"{bounded_softmax_floor(k):.4f}" if softmax else "0",
                    "cap": f"{bounded_softmax_cap(k):.4f}" if softmax else "1",
                    "p(right)": spread([r["p_right"] for r in group]),
                    "largest p(right)": spread([r["p_right_max"] for r in group]),
                    "top-1": spread([r["top1"] for r in group], 3),
                    "watcher": tally([r["watcher"] for r in group]),
                }
            )
            said.append(Said(f"{group[0]['task']}, {setup}", "seed 0", group[0]["_findings"]))
    notes = [
        "cap: the most a softmax of values in [-1, 1] (an LSTM's output) can give one of K "
        "symbols, e / (e + (K-1)/e); floor: the least cross-entropy it allows, the log of "
        "the cap's inverse. Loss, p(right) (the mean probability of the right next symbol), "
        "its largest value and top-1 are read on 64 held-out windows; median over seeds "
        f"(range); {steps} steps of {BATCH} windows; SGD at lr {AS_POSTED.lr}, Adam at 0.03."
    ]
    ab = [r for r in runs if r["symbols"] == 2 and SETUPS[r["setup"]][0] == "softmax"]
    if ab:
        notes.append(
            "On `ab` (2 symbols) with the softmax of the LSTM output, the right symbol's "
            f"unit never gave more than {max(r['right_output_max'] for r in ab):.4f} (tanh(1) "
            "is 0.7616) and p(right) never more than "
            f"{max(r['p_right_max'] for r in ab):.4f}, below the cap of "
            f"{bounded_softmax_cap(2):.4f}: each unit's output must change sign at every step."
        )
    report = LabReport(
        name="alphabet-head",
        title="Alphabet head: the softmax of the LSTM's output against a projection",
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
    tasks = list(dict.fromkeys(r["task"] for r in runs))
    setups = list(SETUPS)
    width = 0.8 / len(setups)
    for i, setup in enumerate(setups):
        values = [
            statistics.median(r["p_right"] for r in runs if r["task"] == t and r["setup"] == setup)
            for t in tasks
        ]
        ax.bar([j + i * width for j in range(len(tasks))], values, width, label=setup)
    for j, task in enumerate(tasks):
        cap = bounded_softmax_cap(int(task.split()[0]))
        ax.hlines(cap, j - width / 2, j + 1.5 * width, colors="black", linestyles=":")
    ax.plot([], [], "k:", label="most a softmax of LSTM outputs can give")
    ax.set_xticks([j + width for j in range(len(tasks))], tasks)
    ax.set_ylabel("probability of the right next symbol (median over seeds)")
    ax.set_ylim(0, 1.4)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Alphabet head")
