"""Experiment `latching` (post 002; Bengio, Simard and Frasconi, 1994): carry the first
input of a sequence to its end.

As posted: a sequence of N values, the first +1 (class 1) or -1 (class 0), every value
plus Gaussian noise of sd 0.1; 10,000 sequences, the positives first; a recurrent layer
(`SimpleRNN` or `LSTM`) of one unit and a dense layer of 2 with softmax, Adam at 1e-3,
batches of 16, 5 epochs, the training part shuffled every epoch. What varies:

- the cell, rnn or lstm, and its width: one unit as posted, and 16;
- the initialisation: Keras's (what the post ran: glorot-uniform input weights,
  orthogonal recurrent weights, zero biases, an LSTM's forget-gate bias at 1; for one
  simple-RNN unit the recurrent weight is +1 or -1) or PyTorch's default (every weight
  and bias uniform in +-1/sqrt(H));
- the validation split: "tail", the last 20% of the sequences as given (Keras's
  `validation_split`: all class 0, and training 5/8 class 1), or "shuffled", the
  sequences shuffled once before the split (the fix);
- the length N.

A model latches when it answers at least 95% of 400 fresh, balanced sequences right.
Before and after training every model is measured: an LSTM's mean forget gate over the
test sequences, and the share of the loss's gradient that reaches the first input
(`key_gradient`). All models of a (cell, width, length) point train together as one
`BatchedCells`. One run of each (cell, initialisation, split) of one unit, at one
length, is trained again as PyTorch modules from the same initial weights, under the
watcher (`charlm/lab/loop.py`), which is given both splits' labels and each epoch's
validation accuracy.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from charlm.lab.batched import BatchedCells, key_gradient
from charlm.lab.loop import LoopConfig, cross_entropy, train
from charlm.lab.report import LabReport, Said, heard

__all__ = ["CELLS", "INITS", "SPLITS", "Grid", "latch_point", "lines", "run", "split"]

CELLS = ("rnn", "lstm")
INITS = ("keras", "pytorch")
SPLITS = ("tail", "shuffled")
LINES, VALIDATION, TEST, BATCH, EPOCHS, LR, NOISE = 10_000, 0.2, 400, 16, 5, 1e-3, 0.1
SUCCESS = 0.95
WATCHED = 20
"""The length of the watched runs."""


class Grid:
    """Where each model of a point sits in its `BatchedCells`: init, then split, then
    repeat."""

    def __init__(self, repeats: int, splits: tuple[str, ...]) -> None:
        self.repeats, self.splits = repeats, splits
        self.size = len(INITS) * len(splits) * repeats

    def index(self, init: str, split: str, repeat: int) -> int:
        return (
            INITS.index(init) * len(self.splits) + self.splits.index(split)
        ) * self.repeats + repeat

    def of(self, index: int) -> tuple[str, str, int]:
        block, repeat = divmod(index, self.repeats)
        init, split = divmod(block, len(self.splits))
        return INITS[init], self.splits[split], repeat


def lines(length: int, n: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` sequences (n, length) as posted, positives first, and their classes (n,)."""
    classes = (torch.arange(n) < n // 2).long()
    x = torch.randn(n, length, generator=rng) * NOISE
    x[:, 0] += classes * 2.0 - 1.0
    return x, classes


def split(
    x: torch.Tensor, y: torch.Tensor, how: str, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training and validation sequences and classes: the last `VALIDATION` of them as
    given ("tail"), or after shuffling them once ("shuffled")."""
    if how == "shuffled":
        order = torch.randperm(x.shape[0], generator=rng)
        x, y = x[order], y[order]
    n = int(x.shape[0] * (1 - VALIDATION))
    return x[:n], y[:n], x[n:], y[n:]


def latch_point(
    cell: str,
    hidden: int,
    length: int,
    repeats: int,
    splits: tuple[str, ...] = SPLITS,
    *,
    epochs: int = EPOCHS,
    n: int = LINES,
    seed: int = 0,
    watch: bool = False,
) -> tuple[list[dict[str, Any]], list[Said]]:
    """Train `repeats` models per initialisation and split for one (cell, width,
    length); a row per model, and (`watch`) what the watcher said about repeat 0 of each
    initialisation and split, trained again as PyTorch modules."""
    rng = torch.Generator().manual_seed(seed * 1_000 + length)
    x, y = lines(length, n, rng)
    data = [split(x, y, how, rng) for how in splits]
    test_x, test_y = lines(length, TEST, rng)
    mixed = torch.randperm(TEST, generator=rng)
    test_x, test_y = test_x[mixed], test_y[mixed]
    grid = Grid(repeats, splits)
    torch.manual_seed(seed * 1_000 + length)
    model = BatchedCells(cell, grid.size, 1, hidden, 2)
    keras = [r for r in range(grid.size) if grid.of(r)[0] == "keras"]
    model.init_keras(keras, rng)
    first = (
        {(i, s): model.export(grid.index(i, s, 0)) for i in INITS for s in splits} if watch else {}
    )
    R = grid.size
    which = torch.tensor([splits.index(grid.of(r)[1]) for r in range(R)])
    tests = test_x.view(1, TEST, length, 1).expand(R, -1, -1, -1)
    measured_before = _measure(model, tests, test_y)
    train_x = torch.stack([d[0] for d in data])  # (S, n_train, T)
    train_y = torch.stack([d[1] for d in data])
    n_train = train_x.shape[1]
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    rows_of = which.unsqueeze(1)
    for _ in range(epochs):
        order = torch.rand(R, n_train, generator=rng).argsort(1)  # each model its own shuffle
        for start in range(0, n_train, BATCH):
            pick = order[:, start : start + BATCH]
            logits = model(train_x[rows_of, pick].unsqueeze(-1))  # (R, B, 2)
            loss = F.cross_entropy(logits.reshape(-1, 2), train_y[rows_of, pick].reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            (loss * R).backward()  # type: ignore[no-untyped-call]  # each model its own mean
            optimizer.step()
    measured_after = _measure(model, tests, test_y)
    val_x = torch.stack([d[2] for d in data])[which]
    val_y = torch.stack([d[3] for d in data])[which]
    with torch.no_grad():
        val_acc = _accuracy(model, val_x, val_y)
    rows = []
    for r in range(R):
        init, how, repeat = grid.of(r)
        row = {
            "cell": cell,
            "hidden": hidden,
            "init": init,
            "split": how,
            "length": length,
            "repeat": repeat,
            "epochs": epochs,
            "val_acc": round(float(val_acc[r]), 4),
            "test_acc": round(float(measured_after["accuracy"][r]), 4),
            "latched": int(measured_after["accuracy"][r] >= SUCCESS),
            "key_grad_start": float(f"{float(measured_before['key'][r]):.3g}"),
            "key_grad_end": float(f"{float(measured_after['key'][r]):.3g}"),
        }
        if cell == "lstm":
            row["forget_start"] = round(float(measured_before["forget"][r]), 4)
            row["forget_end"] = round(float(measured_after["forget"][r]), 4)
        rows.append(row)
    said = []
    for (init, how), (module, head) in first.items():
        d = data[splits.index(how)]
        trained, test_acc = watched_run(module, head, d, (test_x, test_y), epochs, seed)
        said.append(
            Said(
                f"{cell}, 1 unit, {_INIT_NAMES[init]}, {how} split",
                f"length {length}, repeat 0's initial weights and data, as "
                f"`nn.{type(module).__name__}`; test accuracy {test_acc:.2f}",
                trained.findings,
                causes=True,
            )
        )
        rows[grid.index(init, how, 0)]["watcher"] = heard(trained.findings)
    return rows, said


_INIT_NAMES = {"keras": "Keras's initialisation", "pytorch": "PyTorch's initialisation"}


def _measure(model: BatchedCells, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Accuracy, mean forget gate (an LSTM's) and `key_gradient` of every model on the
    test sequences x (R, n, T, 1)."""
    with torch.no_grad():
        forget: list[torch.Tensor] = []
        accuracy = _accuracy(model, x, y.expand(x.shape[0], -1), forget)
    key = key_gradient(model, x[:, :64], y[:64].expand(x.shape[0], -1))
    out = {"accuracy": accuracy, "key": key}
    if forget:
        out["forget"] = torch.stack(forget).mean(0)
    return out


def _accuracy(
    model: BatchedCells,
    x: torch.Tensor,
    y: torch.Tensor,
    forget: list[torch.Tensor] | None = None,
    chunk: int = 500,
) -> torch.Tensor:
    """Each model's accuracy on its sequences x (R, n, T) or (R, n, T, 1), classes y
    (R, n), read `chunk` sequences at a time."""
    x = x.unsqueeze(-1) if x.dim() == 3 else x
    right = []
    for at in range(0, x.shape[1], chunk):
        logits = model.read(model.input_terms(x[:, at : at + chunk]), forget)
        right.append(logits.argmax(-1) == y[:, at : at + chunk])
    return torch.cat(right, 1).float().mean(1)


class _Latcher(nn.Module):
    """A recurrent layer and its head: the class logits after the last step."""

    def __init__(self, recurrent: nn.LSTM | nn.RNN, head: nn.Linear) -> None:
        super().__init__()
        self.rnn, self.head = recurrent, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) -> logits (B, 2)."""
        out, _ = self.rnn(x.unsqueeze(-1))
        logits: torch.Tensor = self.head(out[:, -1])
        return logits


def watched_run(
    recurrent: nn.LSTM | nn.RNN,
    head: nn.Linear,
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    seed: int,
) -> tuple[Any, float]:
    """Train one model as posted under the watcher, evaluating each epoch; what the
    loop returned, and the test accuracy."""
    train_x, train_y, val_x, val_y = data
    model = _Latcher(recurrent, head)
    per_epoch = math.ceil(train_x.shape[0] / BATCH)
    order: list[torch.Tensor] = []

    def batch(rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if not order:  # a new epoch: the training part shuffled again
            order.extend(torch.split(torch.randperm(train_x.shape[0], generator=rng), BATCH))
        pick = order.pop(0)
        return train_x[pick], train_y[pick]

    def evaluate(m: nn.Module) -> dict[str, float]:
        logits = m(val_x)
        return {
            "val_loss": float(F.cross_entropy(logits, val_y)),
            "val_accuracy": float((logits.argmax(-1) == val_y).float().mean()),
        }

    config = LoopConfig(lr=LR, steps=epochs * per_epoch, eval_interval=per_epoch)
    trained = train(
        model, batch, cross_entropy, config, seed=seed, evaluate=evaluate, labels=(train_y, val_y)
    )
    with torch.no_grad():
        test_acc = float((model(test[0]).argmax(-1) == test[1]).float().mean())
    return trained, test_acc


def run(quick: bool, repeats: int | None) -> LabReport:
    narrow = [5, 20, 50] if quick else [2, 5, 10, 20, 50, 100]
    wide = [20] if quick else [5, 20, 50]
    n = repeats or (5 if quick else 30)
    n_wide = repeats or (3 if quick else 10)
    runs: list[dict[str, Any]] = []
    said: list[Said] = []
    for cell in CELLS:
        for length in narrow:
            rows, words = latch_point(cell, 1, length, n, watch=length == WATCHED)
            runs.extend(rows)
            said.extend(words)
        for length in wide:
            runs.extend(latch_point(cell, 16, length, n_wide, ("shuffled",))[0])
    lengths = sorted({r["length"] for r in runs})
    table = _table(runs, lengths)
    report = LabReport(
        name="latching",
        title="Information latching: success against the length, by cell and initialisation",
        columns=["units", "cell", "init", "split", *(f"N={g}" for g in lengths)],
        table=table,
        runs=runs,
        notes=_notes(runs, n, n_wide),
        said=said,
    )
    report.draw = lambda fig: _draw(fig, runs, narrow)
    return report


def _table(runs: list[dict[str, Any]], lengths: list[int]) -> list[dict[str, Any]]:
    """A row per (width, cell, initialisation, split): each length's share latched and
    mean validation accuracy."""
    table = []
    for hidden in (1, 16):
        for cell in CELLS:
            for init in INITS:
                for how in SPLITS:
                    key = (hidden, cell, init, how)
                    group = [
                        r for r in runs if (r["hidden"], r["cell"], r["init"], r["split"]) == key
                    ]
                    if not group:
                        continue
                    row: dict[str, Any] = {
                        "units": hidden,
                        "cell": cell,
                        "init": init,
                        "split": how,
                    }
                    for length in lengths:
                        at = [r for r in group if r["length"] == length]
                        val = statistics.fmean(r["val_acc"] for r in at) if at else 0.0
                        row[f"N={length}"] = f"{_share(at):.2f} (val {val:.2f})" if at else "-"
                    table.append(row)
    return table


def _share(group: list[dict[str, Any]]) -> float:
    return float(sum(r["latched"] for r in group)) / len(group)


def _notes(runs: list[dict[str, Any]], n: int, n_wide: int) -> list[str]:
    steps = EPOCHS * math.ceil(LINES * (1 - VALIDATION) / BATCH)
    notes = [
        f"Each cell: the share of the repeats ({n} per split for 1 unit, {n_wide} for 16, "
        f"shuffled split only) that answer at least {SUCCESS:.0%} of {TEST} fresh balanced "
        "sequences right, and (val) their mean accuracy on their split's validation set at "
        f"the end, the figure the post plotted. {steps} steps of {BATCH} per model."
    ]
    missed = [r for r in runs if not r["latched"] and r["hidden"] == 1]
    for how in SPLITS:
        accs = [r["val_acc"] for r in missed if r["split"] == how]
        if accs:
            notes.append(
                f"The {len(accs)} one-unit models of the {how} split that did not latch score "
                f"{statistics.fmean(accs):.3f} on their validation set on average."
            )
    for cell in CELLS:
        for init in INITS:
            group = [r for r in runs if (r["cell"], r["init"], r["hidden"]) == (cell, init, 1)]
            if not group:
                continue
            parts = []
            if cell == "lstm":
                f0 = statistics.median(r["forget_start"] for r in group)
                parts.append(
                    f"forget gate before training {f0:.2f} (median; {f0:.2f}^{WATCHED} = "
                    f"{f0**WATCHED:.1e})"
                )
            shares = []
            for length in sorted({r["length"] for r in group}):
                ratios = [r["key_grad_start"] for r in group if r["length"] == length]
                shares.append(f"N={length}: {statistics.median(ratios):.2g}")
            parts.append(
                "share of the loss's gradient reaching the first input before training "
                "(median) " + ", ".join(shares)
            )
            notes.append(f"{cell}, 1 unit, {_INIT_NAMES[init]}: " + "; ".join(parts) + ".")
    return notes


def _draw(fig: Any, runs: list[dict[str, Any]], lengths: list[int]) -> None:
    colours = {"rnn": "tab:red", "lstm": "tab:blue"}
    styles = {"keras": "-", "pytorch": "--"}
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for cell in CELLS:
        for init in INITS:
            group = [r for r in runs if (r["cell"], r["init"], r["hidden"]) == (cell, init, 1)]
            shuffled = [r for r in group if r["split"] == "shuffled"]
            rates = [_share([r for r in shuffled if r["length"] == g]) for g in lengths]
            keys = [
                statistics.median(r["key_grad_start"] for r in group if r["length"] == g)
                for g in lengths
            ]
            style = {"color": colours[cell], "linestyle": styles[init], "marker": "o"}
            left.plot(lengths, rates, label=f"{cell}, {init} init", **style)
            right.plot(lengths, [max(k, 1e-30) for k in keys], **style)
    left.set_title("Share of repeats that latch (1 unit, shuffled split)", fontsize=9)
    left.set_ylabel("share of repeats")
    left.set_ylim(-0.03, 1.03)
    left.legend(fontsize=8)
    right.set_title("Gradient reaching the first input, before training", fontsize=9)
    right.set_ylabel("|d loss / d x_0| / |d loss / d x_N| (median)")
    right.set_yscale("log")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(lengths, [str(g) for g in lengths])
        ax.minorticks_off()
        ax.set_xlabel("sequence length N")
