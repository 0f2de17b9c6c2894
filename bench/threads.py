"""Training speed by thread count and OpenMP wait policy, on a quiet and on a busy machine.

    python bench/threads.py [--hidden 64 128 256 512] [--seconds 4] [--repeats 3]

Each cell is a fresh process (the OpenMP wait policy is read once, when the runtime
starts) that trains a 2-layer LSTM (embedding 64, batch 32, window 64: the presets'
shape) with Adam for `--seconds` after a warm-up, and reports characters per second.
"Busy" runs the same measurement while one busy-looping process per core runs beside
it (what `stress --cpu N` does), as on a machine shared with other work. Each figure is
the median of `--repeats` runs; within a row the cells ran one after another, in
interleaved order, so that drift in the machine's speed spreads over all of them.

The rule `charlm.runtime.choose_threads` applies is read off this table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

from common import report

_CHILD = r"""
import json, sys, time, torch
from torch import nn
hidden, threads, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
class Model(nn.Module):  # CharLSTM's layers, without importing charlm
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(65, 64)
        self.lstm = nn.LSTM(64, hidden, 2, batch_first=True)
        self.head = nn.Linear(hidden, 65)
    def forward(self, x):
        return self.head(self.lstm(self.emb(x))[0]), None
model = Model()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, 65, (32, 64)); y = torch.randint(0, 65, (32, 64))
def step():
    opt.zero_grad(set_to_none=True)
    logits, _ = model(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 65), y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
for _ in range(3):
    step()
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < seconds:
    step(); n += 1
print(json.dumps({"chars_per_s": n * 32 * 64 / (time.perf_counter() - t0)}))
"""


def _spin() -> None:
    while True:
        pass


def measure(hidden: int, threads: int, policy: str, seconds: float) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(hidden), str(threads), str(seconds)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    return float(json.loads(out.strip().splitlines()[-1])["chars_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    cells = [(t, p) for t in (1, cores) for p in ("default", "PASSIVE")]
    rows = []
    for load in ("quiet", "busy"):
        hogs: list[multiprocessing.Process] = []
        if load == "busy":
            hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(cores)]
            for h in hogs:
                h.start()
            time.sleep(1.0)
        try:
            for hidden in args.hidden:
                runs: dict[tuple[int, str], list[float]] = {c: [] for c in cells}
                for _ in range(args.repeats):
                    for cell in cells:
                        runs[cell].append(measure(hidden, *cell, args.seconds))
                med = {c: statistics.median(v) for c, v in runs.items()}
                base = med[(1, "default")]
                cols = " | ".join(f"{med[c]:,.0f} ({med[c] / base:.2f}x)" for c in cells)
                rows.append(f"| {load} | 2 x {hidden} | {cols} |")
                print(rows[-1], flush=True)
        finally:
            for h in hogs:
                h.terminate()
    head = " | ".join(f"{t} thread{'s' if t > 1 else ''}, {p.lower()}" for t, p in cells)
    table = (
        f"| machine | model | {head} |\n|---|---|" + "---|" * len(cells) + "\n" + "\n".join(rows)
    )
    notes = (
        f"Training characters per second (median of {args.repeats} runs of {args.seconds:g} s "
        "each; in brackets, the ratio to 1 thread with the default policy in the same row). "
        "2-layer LSTM, embedding 64, batch 32, window 64, AdamW, float32; one fresh process "
        f"per run. 'busy': {cores} busy-looping processes ran beside it, one per core. "
        "'default' leaves OMP_WAIT_POLICY unset (GNU OpenMP then spins before sleeping); "
        "'passive' sets OMP_WAIT_POLICY=PASSIVE (idle threads sleep at once)."
    )
    report("Threads and OpenMP wait policy, quiet and busy", table, notes, write=not args.no_write)


if __name__ == "__main__":
    main()
