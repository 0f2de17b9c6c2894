"""Training speed by thread count and OpenMP wait policy, on a quiet and on a busy machine.

    python bench/threads.py [--repeats 3]

Each cell is a fresh `charlm train` process (the OpenMP wait policy is read once, when
the runtime starts) with `--threads` set, training one preset's model (tiny on the
alphabet, small and large on corpora/notes.txt, and 2 x 512) for a fixed number of
steps; the figure is the characters per second it reports.
"Busy" runs the same measurement while one busy-looping process per core runs beside
it (what `stress --cpu N` does), as on a machine shared with other work. Each figure is
the median of `--repeats` runs; within a row the cells ran one after another, in
interleaved order, so that drift in the machine's speed spreads over all of them.

The rule `charlm.runtime.choose_threads` applies is read off this table.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

from common import REPO, busy_loops, report

SHAPES = {
    "tiny preset (alphabet: 1 x 64, window 8)": ("alphabet.txt", ["--preset", "tiny"], 1000),
    "small preset (notes: 2 x 128, window 64)": ("notes.txt", ["--preset", "small"], 150),
    "large preset (notes: 2 x 256, window 64)": ("notes.txt", ["--preset", "large"], 60),
    "2 x 512, window 64 (notes)": ("notes.txt", ["--preset", "large", "--hidden-size", "512"], 20),
}


def measure(shape: tuple[str, list[str], int], threads: int, policy: str, tmp: str) -> float:
    """Characters per second of training steps in one `charlm train` run (evaluation,
    saving and drawing are not counted: the trainer times its steps alone)."""
    corpus, flags, steps = shape
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    cmd = [sys.executable, "-m", "charlm", "train", str(REPO / "corpora" / corpus), *flags]
    cmd += ["--max-steps", str(steps), "--eval-interval", str(steps), "--threads", str(threads)]
    cmd += ["--checkpoints-dir", tmp, "--name", "t", "--overwrite", "--quiet"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=900)
    match = re.search(r"\(([\d,]+) chars/s\)", out.stdout)
    assert match, out.stdout
    return float(match.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    cells = [(t, p) for t in (1, cores) for p in ("default", "PASSIVE")]
    rows = []
    for load in ("quiet", "busy"):
        with busy_loops(cores if load == "busy" else 0):
            for label, shape in SHAPES.items():
                runs: dict[tuple[int, str], list[float]] = {c: [] for c in cells}
                for _ in range(args.repeats):
                    for cell in cells:
                        with tempfile.TemporaryDirectory() as tmp:
                            runs[cell].append(measure(shape, *cell, tmp))
                med = {c: statistics.median(v) for c, v in runs.items()}
                base = med[(1, "default")]
                cols = " | ".join(f"{med[c]:,.0f} ({med[c] / base:.2f}x)" for c in cells)
                rows.append(f"| {load} | {label} | {cols} |")
                print(rows[-1], flush=True)
    head = " | ".join(f"{t} thread{'s' if t > 1 else ''}, {p.lower()}" for t, p in cells)
    table = (
        f"| machine | model | {head} |\n|---|---|" + "---|" * len(cells) + "\n" + "\n".join(rows)
    )
    notes = (
        f"Training characters per second of `charlm train` (median of {args.repeats} runs; in "
        "brackets, the ratio to 1 thread with the default policy in the same row), as the "
        "trainer reports it: the time of its steps, not of evaluations, saves or plots. Batch "
        "32, precision as the preset chooses (bf16 autocast for 256 units and more, which "
        "this CPU computes natively), one fresh process per run, the cells of a row "
        "interleaved. 'busy': "
        f"{cores} busy-looping processes ran beside it, one per core. "
        "'default' leaves OMP_WAIT_POLICY unset (GNU OpenMP then spins before sleeping); "
        "'passive' sets OMP_WAIT_POLICY=PASSIVE (idle threads sleep at once)."
    )
    report("Threads and OpenMP wait policy, quiet and busy", table, notes, write=not args.no_write)


if __name__ == "__main__":
    main()
