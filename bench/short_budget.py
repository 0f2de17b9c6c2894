"""A 1-minute `charlm train` on 35 KB of text while busy loops take every core.

    python bench/short_budget.py [--before REV] [--minutes 1] [--hogs N] [--no-write]

The text is 35,000 characters of tiny Shakespeare (from ../shared/corpora; the script
stops with a message without it). Beside each run, one busy-looping process per core
runs (`--hogs N`: N of them), as on a machine shared with other work. Each run is a
fresh `charlm train CORPUS --max-minutes M`, once with the threads charlm chooses and
once with `--threads` set to the number of cores (what a machine whose load charlm
cannot see gets). With `--before
REV` the same runs are made with that revision's code (checked out into a temporary
worktree), in the same session, interleaved.

Reported: the preset the run used, its steps, its best validation loss against the
corpus's unigram entropy (a model that has learned anything beyond character
frequencies is below it), and the learning rate of its last logged step as a share of
the peak (a run still warming up ends far below 1.0 and far above the floor).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import REPO, busy_loops, code_trees, report

SHAKESPEARE = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"
CHARS = 35_000
OFFSET = 500_000  # from the middle of the play text, not its opening scene


def unigram_entropy(text: str) -> float:
    counts = collections.Counter(text)
    n = len(text)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def run(code: Path, corpus: Path, minutes: float, threads: int | None, tmp: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-m", "charlm", "train", str(corpus), "--max-minutes", str(minutes)]
    cmd += ["--checkpoints-dir", str(tmp), "--name", "run", "--overwrite", "--quiet"]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(
        cmd, env=env, cwd=tmp, capture_output=True, text=True, check=True, timeout=900
    )
    steps = int(re.search(r"trained (\d+) steps", out.stdout).group(1))  # type: ignore[union-attr]
    best = float(re.search(r"loss ([\d.]+) nats/char", out.stdout).group(1))  # type: ignore[union-attr]
    saved = json.loads((tmp / "run" / "checkpoint.json").read_text())
    rows = [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in rows if r.get("kind") == "train"]
    last_lr = lrs[-1] if lrs else math.nan  # fewer steps than one logging interval
    return {
        "preset": saved["summary"].get("preset", "?"),
        "hidden": saved["model_config"]["hidden_size"],
        "steps": steps,
        "best": best,
        "lr_share": last_lr / saved["train_config"]["lr"],
        "floor": saved["train_config"]["min_lr_ratio"],
        "said": out.stderr.strip().replace("\n", " "),
    }


def _share(value: float) -> str:
    return "none logged" if math.isnan(value) else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="git revision to compare with")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--hogs", type=int, help="busy loops beside it (default: one per core)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if not SHAKESPEARE.exists():
        sys.exit(f"tiny Shakespeare not found at {SHAKESPEARE}")
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        text = SHAKESPEARE.read_text(encoding="utf-8")[OFFSET : OFFSET + CHARS]
        corpus = root / "shakespeare35k.txt"
        corpus.write_text(text, encoding="utf-8")
        n_hogs = args.hogs if args.hogs is not None else cores
        rows = []
        entropy = unigram_entropy(text)
        with code_trees(args.before, root) as codes, busy_loops(n_hogs):
            for threads in (None, cores):
                for label, code in codes.items():
                    out = root / "out"
                    out.mkdir(exist_ok=True)
                    r = run(code, corpus, args.minutes, threads, out)
                    shown = "charlm's choice" if threads is None else f"--threads {threads}"
                    rows.append(
                        f"| {label} | {shown} | {r['preset']} ({r['hidden']} units) | "
                        f"{r['steps']:,} | {r['best']:.4f} | {entropy - r['best']:.2f} | "
                        f"{_share(r['lr_share'])} (floor {r['floor']:g}) |"
                    )
                    print(rows[-1], r["said"], flush=True)
    table = (
        "| code | threads | preset used | steps | best val loss | below unigram "
        "(nats) | last lr / peak |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    notes = (
        f"`charlm train` on {CHARS:,} characters of tiny Shakespeare (from offset {OFFSET:,}; "
        f"unigram entropy {entropy:.4f} nats/char) with `--max-minutes {args.minutes:g}`, "
        f"while {n_hogs} busy-looping processes ran beside it ({cores} cores). 'below unigram' "
        "is the corpus's unigram entropy minus the best validation loss. 'last lr / peak': "
        "the learning rate of the last logged step over `--lr`; the schedule ends at the "
        "floor (`--min-lr-ratio`) when the budget ends it after warm-up."
    )
    report(
        f"A {args.minutes:g}-minute run with {n_hogs} busy loops on {cores} cores",
        table,
        notes,
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
