"""A corpus larger than memory should be: peak RSS and time to the first step, 100 M chars.

    python bench/big_corpus.py [--chars 100000000] [--steps 30] [--before REV] [--write]

Writes tiny Shakespeare repeated to `--chars` characters (corpora/notes.txt repeated if
tiny Shakespeare is not beside the project) into a temporary file, then, each in a
fresh process whose own peak resident set size it reports (getrusage):

- `charlm corpus prepare` of that file (the time it takes, and its memory);
- training on the prepared directory (`fit`, the `large` preset: 2 x 256 LSTM, batch
  32, window 64, `--steps` steps);
- training on the text file itself, which charlm prepares on the fly into an empty
  cache (so the time to the first step includes the preparation);
- training on a 1.1 M-character corpus (one copy), for the memory of the model and
  training themselves;
- with `--before REV`, training on the text file with the charlm of git revision REV,
  which read a corpus whole.

"first step" is the time from starting the process to the end of the first training
step (imports included).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, code_trees, report

CHILD = """
import json, resource, sys, time
from charlm.training import fit
from charlm.training.callbacks import TrainCallback

class First(TrainCallback):
    at = None
    def on_step(self, info):
        if self.at is None:
            self.at = time.time()

first = First()
result = fit(sys.argv[1], sys.argv[2], preset="large", plots=False, callback=first,
             train_overrides={"max_steps": int(sys.argv[3]), "eval_interval": 10**6})
print(json.dumps({"first_step_at": first.at, "steps": result.steps,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

PREPARE = """
import json, resource, sys
from charlm.prepared import prepare
corpus = prepare(sys.argv[1], sys.argv[2])
print(json.dumps({"chars": corpus.chars, "dtype": str(corpus.ids.dtype),
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(
    code: str, args: list[str], tree: Path, env: dict[str, str]
) -> tuple[dict[str, Any], float]:
    """Run `code` in a fresh Python on `tree`'s charlm; its JSON answer and wall seconds."""
    env = {**os.environ, **env, "PYTHONPATH": str(tree)}
    t0 = time.time()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{args} failed:\n{done.stderr}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if "first_step_at" in answer:
        answer["first_step_s"] = answer["first_step_at"] - t0
    return answer, time.time() - t0


def write_corpus(path: Path, chars: int) -> str:
    source = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"
    if not source.is_file():
        source = REPO / "corpora" / "notes.txt"
    text = source.read_text(encoding="utf-8")
    with path.open("w", encoding="utf-8") as f:
        left = chars
        while left > 0:
            f.write(text[:left])
            left -= len(text)
    return source.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chars", type=int, default=100_000_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--before", metavar="REV", help="also measure this git revision")
    parser.add_argument("--write", action="store_true", help="append to BENCHMARKS.md")
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float | None, float]] = []
    with tempfile.TemporaryDirectory() as tmp, code_trees(args.before, Path(tmp)) as trees:
        root = Path(tmp)
        big = root / "big.txt"
        name = write_corpus(big, args.chars)
        small = root / "small.txt"
        write_corpus(small, 1_115_394)
        now = trees["now"]
        env = {"CHARLM_CACHE": str(root / "cache")}
        prep, prep_s = run(PREPARE, [str(big), str(root / "big.prepared")], now, env)
        rows.append(("now", "charlm corpus prepare big.txt", prep["peak_mib"], None, prep_s))
        cases = [
            ("now", "train big.prepared (mapped)", root / "big.prepared", now),
            ("now", "train big.txt (prepared on the fly)", big, now),
            ("now", "train small.txt (1.1 M chars, in memory)", small, now),
        ]
        cases += [
            (label, "train big.txt (read whole)", big, tree)
            for label, tree in trees.items()
            if label != "now"
        ]
        for i, (label, what, corpus, tree) in enumerate(cases):
            out = root / f"ck{i}"
            answer, wall = run(CHILD, [str(corpus), str(out), str(args.steps)], tree, env)
            rows.append((label, what, answer["peak_mib"], answer["first_step_s"], wall))
            print(rows[-1], flush=True)
    table = "| code | run | peak RSS, MiB | first step, s | whole run, s |\n|---|---|---|---|---|\n"
    for label, what, peak, first, wall in rows:
        shown = f"{first:.1f}" if first is not None else "-"
        table += f"| {label} | {what} | {peak:,.0f} | {shown} | {wall:.1f} |\n"
    notes = (
        f"big.txt: {args.chars:,} characters ({name} repeated), uint8 ids "
        f"({prep['dtype']}, {prep['chars']:,}). Each row is a fresh process; peak RSS from "
        f"getrusage, which counts the mapped corpus pages that the process touched. "
        f"Training: the `large` preset (2 x 256 LSTM, batch 32, window 64), "
        f"{args.steps} steps and one evaluation. The first step's time counts from "
        "the process's start, imports included."
    )
    report("Training on a 100-million-character corpus", table, notes, write=args.write)


if __name__ == "__main__":
    main()
