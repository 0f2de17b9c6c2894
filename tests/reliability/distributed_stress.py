"""Run the data-parallel tests again and again beside busy loops, and count what failed.

    python tests/reliability/distributed_stress.py [--runs 5] [--busy 2] [--before REV] [--write]

Each run is `pytest tests/test_distributed.py` (several real two-rank `charlm train
--nproc 2` runs through torchrun, on loopback) in a fresh process, with `--busy`
processes spinning on the CPU beside it, as on a machine shared with other work. A run
passes when every test of the file passes. The script counts the ranks that aborted
("terminate called without an active exception", SIGABRT) as well. With `--before REV`
the same runs are made first with the tests and code of git revision REV, from a
temporary worktree, interleaved run by run with this checkout's so that both meet the
same load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, record

sys.path.insert(0, str(REPO))
from bench.common import busy_loops, code_trees

TESTS = "tests/test_distributed.py"
ABORT = "terminate called without an active exception"


def one_run(tree: Path) -> tuple[bool, int, str]:
    """(every test passed, ranks that aborted, pytest's summary line) for one run."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TESTS],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    return done.returncode == 0, done.stdout.count(ABORT), lines[-1] if lines else done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of the test file per tree")
    parser.add_argument("--busy", type=int, default=2, help="busy-looping processes beside")
    parser.add_argument("--before", metavar="REV", help="also run the tests of this revision")
    parser.add_argument("--write", action="store_true", help="add the rows to RELIABILITY.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, code_trees(args.before, Path(tmp)) as trees:
        tally = {label: [0, 0, 0.0] for label in trees}  # passed runs, aborts, seconds
        with busy_loops(args.busy):
            for n in range(args.runs):
                for label, tree in trees.items():
                    t0 = time.perf_counter()
                    passed, aborts, summary = one_run(tree)
                    tally[label][0] += passed
                    tally[label][1] += aborts
                    tally[label][2] += time.perf_counter() - t0
                    print(f"run {n + 1} {label}: {summary}", flush=True)
    for label, (passed, aborts, seconds) in tally.items():
        record(
            "distributed",
            f"| `pytest tests/test_distributed.py` beside {args.busy} busy loops, {label} | "
            f"{args.runs} runs ({seconds / args.runs:.0f} s each) | {passed}/{args.runs} runs "
            f"passed; {aborts} rank(s) aborted at exit",
            write=args.write,
        )


if __name__ == "__main__":
    main()
