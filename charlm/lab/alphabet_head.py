"""Experiment `alphabet-head`: the softmax taken straight of the LSTM's output.

Three cycles (26 letters in 26-step windows, `ab` in 4-step windows, 56 symbols in
56-step windows), each learned by three set-ups that share the LSTM (one unit per
symbol) and differ only as named:

- "softmax on the LSTM output, SGD, no clipping": the set-up as it is usually found;
- "softmax on the LSTM output, Adam, clipping": the optimiser fixed, the head not;
- "linear projection, Adam, clipping": charlm's `CharRNN` (the fix).

Every window is read from zero state, as the classic code does; every next symbol is
determined by the one before, so a model can reach certainty at every step.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from charlm.diagnostics.findings import RunFacts
from charlm.diagnostics.references import ReferenceLevels
from charlm.diagnostics.report import diagnose_rows
from charlm.lab.broken import (
    SoftmaxOnOutput,
    double_softmax_floor,
    output_cap,
    probabilities,
    softmax_head_floor,
)
from charlm.lab.loop import LoopConfig, mean_loss, random_windows, train
from charlm.lab.report import LabReport, spread
from charlm.model import CharRNN, ModelConfig
from charlm.tasks import CycleConfig, make_task
from charlm.vocab import Vocabulary

__all__ = ["SETUPS", "TASKS", "run"]

TASKS = ((26, 26), (2, 4), (56, 56))
"""(symbols, window length)."""
SETUPS = {
    "softmax on LSTM output, SGD, no clipping": (
        "softmax",
        LoopConfig(optimizer="sgd", lr=0.5, clip=0),
    ),
    "softmax on LSTM output, Adam, clipping": ("softmax", LoopConfig(lr=0.03)),
    "linear projection, Adam, clipping (charlm)": ("projection", LoopConfig(lr=0.03)),
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
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    model = build(head, symbols, seed)
    val_x, val_y = random_windows(ids, 64, window)(torch.Generator().manual_seed(10_000 + seed))
    config = LoopConfig(**{**loop.__dict__, "steps": steps})
    rows = train(
        model, random_windows(ids, BATCH, window), config, seed=seed, validation=(val_x, val_y)
    )
    probs = probabilities(model, val_x)  # (B, T, K)
    right = probs.gather(-1, val_y.unsqueeze(-1)).squeeze(-1)
    facts = RunFacts(ReferenceLevels.of_ids(ids), symbols, config.clip or None)
    diagnosis = diagnose_rows(rows, facts, setup)
    return {
        "task": f"{symbols} symbols, {window}-step windows",
        "setup": setup,
        "seed": seed,
        "steps": steps,
        "loss": mean_loss(model, val_x, val_y),
        "floor": softmax_head_floor(symbols) if head == "softmax" else 0.0,
        "p_right": float(right.mean()),
        "p_min": float(right.min()),
        "top1": float((probs.argmax(-1) == val_y).float().mean()),
        "findings": " ".join(f.name for f in diagnosis.findings),
        "_quote": [f.line() for f in sorted(diagnosis.findings, key=_explains)],
    }


def run(quick: bool, repeats: int | None) -> LabReport:
    seeds = range(repeats or (2 if quick else 5))
    steps = 400 if quick else 1000
    runs = [
        one_run(k, w, setup, seed, steps) for k, w in TASKS for setup in SETUPS for seed in seeds
    ]
    table, notes = [], []
    for k, _ in TASKS:
        for setup in SETUPS:
            group = [
                r for r in runs if r["task"].startswith(f"{k} symbols") and r["setup"] == setup
            ]
            table.append(
                {
                    "task": group[0]["task"],
                    "set-up": setup,
                    "loss (nats)": spread([r["loss"] for r in group]),
                    "floor": f"{group[0]['floor']:.4f}" if group[0]["floor"] else "0",
                    "cap": f"{output_cap(k):.4f}" if group[0]["floor"] else "1",
                    "p(right)": spread([r["p_right"] for r in group]),
                    "min p(right)": spread([r["p_min"] for r in group]),
                    "top-1": spread([r["top1"] for r in group], 3),
                    "diagnosis": _findings(group),
                }
            )
    notes.append(
        "cap: the most a softmax head's distribution can give one symbol, "
        "e / (e + (K-1)/e), since LSTM outputs lie in (-1, 1); floor: the least loss it "
        "can reach, those capped probabilities being softmaxed again by cross_entropy "
        f"(were the outputs unbounded, the second softmax alone would floor at "
        f"ln(1 + (K-1)/e): {double_softmax_floor(26):.4f} nats for 26 symbols). p(right) "
        "and top-1 are read from the distribution each model outputs, on 64 held-out "
        "windows."
    )
    for r in runs:
        if r["_quote"] and r["seed"] == 0 and r["task"].startswith("26 symbols"):
            notes.append(f"Diagnosis of '{r['setup']}' (26 symbols, seed 0): {r['_quote'][0]}")
    report = LabReport(
        name="alphabet-head",
        title="Alphabet head: softmax on the LSTM output against a projection",
        columns=list(table[0]),
        table=table,
        runs=runs,
        notes=notes,
    )
    report.draw = lambda fig: _draw(fig, runs)
    return report


def _explains(finding: Any) -> int:
    """The findings that explain a stalled head first."""
    order = ["plateau_on_determined_text", "stuck_at_unigram"]
    return order.index(finding.name) if finding.name in order else len(order)


def _findings(group: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in group:
        for name in str(r["findings"]).split():
            counts[name] = counts.get(name, 0) + 1
    return ", ".join(f"{n} ({c}/{len(group)})" for n, c in counts.items()) or "none"


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
        cap = output_cap(int(task.split()[0]))
        ax.hlines(cap, j - width / 2, j + 1.5 * width, colors="black", linestyles=":")
    ax.plot([], [], "k:", label="most a softmax of LSTM outputs can give")
    ax.set_xticks([j + width for j in range(len(tasks))], tasks)
    ax.set_ylabel("probability of the right next symbol (median over seeds)")
    ax.set_ylim(0, 1.4)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Alphabet head")
