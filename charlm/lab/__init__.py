"""The recurrent-nets lab: four classic set-ups where a recurrent net will not learn,
each run broken and fixed, measured over several seeds, and written up.

    alphabet_head   softmax on the LSTM's output against a projection   (alphabet_head.py)
    counting        the loop that never zeroes its gradients            (counting.py)
    functions       which function drew these points, by point count    (functions.py)
    latching        rnn, lstm and gru across gaps, two validation splits (latching.py)

Shared parts: `loop.py` (a training loop whose classic choices are settings),
`broken.py` (the broken pieces, which exist only here), `batched.py` (many small models
trained as one) and `report.py` (markdown, CSV and PNG). `run_experiment(name)` runs one
and returns its `LabReport`; `charlm lab NAME` writes it out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from charlm.errors import ConfigError
from charlm.lab import alphabet_head, counting, functions, latching
from charlm.lab.report import LabReport, write_report

__all__ = ["EXPERIMENTS", "LabReport", "run_experiment", "write_report"]

EXPERIMENTS: dict[str, Callable[[bool, int | None], LabReport]] = {
    "alphabet-head": alphabet_head.run,
    "counting": counting.run,
    "functions": functions.run,
    "latching": latching.run,
}


def run_experiment(name: str, *, quick: bool = False, repeats: int | None = None) -> LabReport:
    """Run the experiment `name`: `quick` is the few-minute version; `repeats` replaces
    its number of seeds (repeats per grid point for latching)."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"no experiment {name!r}; the lab has {', '.join(EXPERIMENTS)}")
    if repeats is not None and (isinstance(repeats, bool) or repeats < 1):
        raise ConfigError(f"--repeats must be at least 1, got {repeats}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run fastest on one thread (and fairest beside others)
    t0 = time.perf_counter()
    try:
        report = EXPERIMENTS[name](quick, repeats)
    finally:
        torch.set_num_threads(threads)
    report.seconds = time.perf_counter() - t0
    report.command = (
        f"charlm lab {name}"
        + (" --quick" if quick else "")
        + (f" --repeats {repeats}" if repeats is not None else "")
    )
    return report
