"""`charlm diagnose --log` on a training log of hundreds of megabytes: its time and memory.

    python tests/reliability/big_log.py [--rows 7230000] [--write]

Writes a `step,loss,val_loss,grad_norm,lr` CSV of `--rows` rows (a validation loss every
100th row; 7,230,000 rows make 238 MB) into a temporary directory, runs `charlm diagnose
--log` on it in a child process, and reports the child's wall time, peak resident memory
(`getrusage`) and exit code. The log is read row by row and thinned to at most 50,000
training rows (charlm/diagnostics/logs.py), so the peak must not grow with the file.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, record


def write_log(path: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w", encoding="utf-8") as f:
        f.write("step,loss,val_loss,grad_norm,lr\n")
        for start in range(0, rows, 500_000):
            steps = np.arange(start, min(rows, start + 500_000)) + 1
            loss = 4.2 * np.exp(-steps / 2e6) + 1.0 + rng.normal(0, 0.05, len(steps))
            norm = np.abs(rng.normal(0.5, 0.1, len(steps)))
            f.write(
                "".join(
                    f"{s},{x:.6f},{f'{x + 0.1:.6f}' if s % 100 == 0 else ''},{g:.6f},0.001\n"
                    for s, x, g in zip(steps.tolist(), loss.tolist(), norm.tolist(), strict=True)
                )
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7_230_000)
    parser.add_argument("--write", action="store_true", help="add the row to RELIABILITY.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "big.csv"
        write_log(log, args.rows)
        size = log.stat().st_size
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "charlm", "diagnose", "--log", str(log)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB
    first = (done.stdout or done.stderr).strip().splitlines()[:1]
    record(
        "biglog",
        f"| `charlm diagnose --log` on a CSV of {args.rows:,} rows ({size / 1e6:,.0f} MB) | 1 "
        f"| exit {done.returncode} in {seconds:.1f} s, peak RSS {peak:,.0f} MiB; it said: "
        f"{first[0][:120] if first else '(nothing)'} ",
        write=args.write,
    )


if __name__ == "__main__":
    main()
