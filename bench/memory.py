"""Peak memory (RSS) of `charlm train` against corpus size.

    python bench/memory.py [--copies 1 4 16] [--steps 30]

Writes tiny Shakespeare repeated 1, 4 and 16 times to temporary files and trains the
same model (the `large` preset) on each for a few steps in a fresh process, reading
that process's peak resident set size from the kernel (wait4). Training memory should
grow only with the corpus itself: the table gives the growth per extra corpus
character. Needs ../shared/corpora/tinyshakespeare.txt or a downloaded copy.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import report
from quality import find_corpus


def peak_rss_mib(argv: list[str]) -> float:
    """Run `argv` to completion; its peak RSS in MiB (Linux reports ru_maxrss in KiB)."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        assert process.stderr is not None
        raise SystemExit(f"{argv} failed: {process.stderr.read().decode()}")
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    corpus = find_corpus()
    if corpus is None:
        print("tiny Shakespeare not found (../shared/corpora or `charlm corpus download`)")
        return
    text = corpus.read_text(encoding="utf-8")
    baseline = peak_rss_mib([sys.executable, "-c", "import charlm.cli"])
    rows, first = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for copies in args.copies:
            path = Path(tmp) / f"shakespeare-x{copies}.txt"
            path.write_text(text * copies, encoding="utf-8")
            chars = len(text) * copies
            train = [sys.executable, "-m", "charlm", "train", str(path), "--quiet"]
            train += [
                "--checkpoints-dir",
                str(Path(tmp) / "ckpt"),
                "--overwrite",
                "--preset",
                "large",
            ]
            train += ["--max-steps", str(args.steps), "--eval-interval", str(args.steps)]
            rss = peak_rss_mib(train)
            if first is None:
                first = (chars, rss)
                growth = "-"
            else:
                per_char = (rss - first[1]) * 2**20 / (chars - first[0])
                growth = f"{per_char:.1f}"
            rows.append(f"| {copies} | {chars:,} | {rss:,.0f} | {growth} |")
            print(rows[-1], flush=True)
    table = (
        "| copies of tiny Shakespeare | corpus chars | peak RSS, MiB | bytes per extra char |\n"
        "|---|---|---|---|\n" + "\n".join(rows)
    )
    notes = (
        f"`charlm train --preset large --max-steps {args.steps}` (2 x 256 LSTM, batch 32, "
        "window 64), one fresh process per row, peak RSS from wait4. Python with charlm "
        f"imported and nothing else: {baseline:,.0f} MiB. Growth per extra character is "
        "against the first row."
    )
    report("Peak memory of training against corpus size", table, notes, write=not args.no_write)


if __name__ == "__main__":
    main()
