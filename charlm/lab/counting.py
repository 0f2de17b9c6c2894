"""Experiment `counting` (post 000): the loop that never zeroes its gradients.

The post's regression: an `nn.LSTM` of 100 units and a `Linear` layer, in float64, read
the 21 points x = 0, 0.05, ..., 1 as one sequence and learn y = x + 0.1 at every point,
the loss the sum of the 21 squared errors, Adam at 1e-3, 1,000 steps (300 with
`--quick`). Three set-ups
differ only in `optimizer.zero_grad()` and clipping:

- "as posted": no `zero_grad`, so every step's gradient is the sum of every gradient so
  far;
- the same with the gradient norm clipped at 1, which scales that sum down in place
  every step (a heavy momentum, not a fix);
- with `zero_grad` (the fix the post's answer gives).

Scored by the final loss, the largest error of the 21 outputs, and the lowest loss the
run passed through on its way (a loss that swings back up shows there).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from charlm.lab.loop import LoopConfig, train
from charlm.lab.report import LabReport, Said, heard, spread, tally
from charlm.runlog import TrainRow

__all__ = ["SETUPS", "Regressor", "run"]

SETUPS = {
    "as posted: no zero_grad": LoopConfig(lr=1e-3, zero_grad=False),
    "no zero_grad, clipping at 1": LoopConfig(lr=1e-3, zero_grad=False, clip=1.0),
    "zero_grad every step (the fix)": LoopConfig(lr=1e-3),
}
POINTS, STEPS, QUICK_STEPS = 21, 1000, 300


class Regressor(nn.Module):
    """The post's model: `nn.LSTM(1, 100)` and `nn.Linear(100, 1)`, in float64."""

    def __init__(self, hidden_size: int = 100) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden_size, batch_first=True).double()
        self.linear = nn.Linear(hidden_size, 1).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, 1) -> one value per point, (B, T)."""
        out, _ = self.lstm(x)
        prediction: torch.Tensor = self.linear(out).squeeze(-1)
        return prediction


def sequence() -> tuple[torch.Tensor, torch.Tensor]:
    """The post's one example: x (1, 21, 1) = 0, 0.05, ..., 1 and y (1, 21) = x + 0.1."""
    x = torch.arange(POINTS, dtype=torch.float64) / 20
    return x.view(1, POINTS, 1), (x + 0.1).view(1, POINTS)


def squared_errors(prediction: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The post's loss: the squared errors summed over the points."""
    return ((prediction - y) ** 2).sum()


def one_run(setup: str, seed: int, steps: int = STEPS) -> dict[str, Any]:
    x, y = sequence()
    torch.manual_seed(seed)
    model = Regressor()
    trained = train(
        model,
        lambda rng: (x, y),
        squared_errors,
        SETUPS[setup].replace(steps=steps, log_interval=1),
        seed=seed,
    )
    with torch.no_grad():
        prediction = model(x)
    logged = [r for r in trained.rows if isinstance(r, TrainRow)]
    losses = [(r.step, r.loss) for r in logged if r.loss is not None]
    return {
        "setup": setup,
        "seed": seed,
        "steps": steps,
        "loss": float(squared_errors(prediction, y)),
        "lowest_loss": min(loss for _, loss in losses),
        "largest_error": float((prediction - y).abs().max()),
        "first_grad_norm": logged[0].grad_norm,
        "last_grad_norm": logged[-1].grad_norm,
        "watcher": heard(trained.findings),
        "_findings": trained.findings,
        "_curve": losses,
    }


def run(quick: bool, repeats: int | None) -> LabReport:
    seeds = range(repeats or (2 if quick else 5))
    steps = QUICK_STEPS if quick else STEPS
    runs = [one_run(setup, seed, steps) for setup in SETUPS for seed in seeds]
    table, said = [], []
    for setup in SETUPS:
        group = [r for r in runs if r["setup"] == setup]
        table.append(
            {
                "set-up": setup,
                "final loss": spread([r["loss"] for r in group], 5),
                "lowest loss on the way": spread([r["lowest_loss"] for r in group], 5),
                "largest error": spread([r["largest_error"] for r in group]),
                "gradient norm, step 1": spread([r["first_grad_norm"] for r in group], 3),
                f"gradient norm, step {steps}": spread([r["last_grad_norm"] for r in group], 3),
                "watcher": tally([r["watcher"] for r in group]),
            }
        )
        said.append(Said(setup, "seed 0", group[0]["_findings"]))
    posted = "" if steps == STEPS else f" (the post ran {STEPS:,})"
    notes = [
        f"{steps} steps on the one sequence{posted}; the loss is the sum of the {POINTS} squared "
        "errors; the largest error is the largest |output - target| of the 21 points after "
        "training; gradient norms before clipping. Median over seeds (range)."
    ]
    report = LabReport(
        name="counting",
        title="Counting: gradients that are never zeroed (y = x + 0.1, MSE)",
        columns=list(table[0]),
        table=table,
        runs=runs,
        notes=notes,
        said=said,
    )
    curves = {(r["setup"], r["seed"]): r["_curve"] for r in runs}
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
    ax.set_ylabel("loss (sum of the 21 squared errors)")
    ax.legend()
    ax.set_title("Counting: each seed's loss")
