"""The cost of the training signals: chars/s with `signals on` (the default: per-layer
gradient norms, update ratios and gate statistics at every logging step) against
`signals off`, at each preset's own shape and logging interval.

    python bench/diagnostics.py [--steps 400] [--repeats 5]

Rows: the `tiny` preset on the alphabet (the smallest steps, so the largest share) and
the `large` preset's shape on tiny Shakespeare (or, without it, notes.txt repeated to
the same length). Each repeat runs both settings one after the other, in alternating
order, and the table gives the medians and the median of the per-repeat ratios, so that
drift of the machine's speed falls on both alike. chars/s counts the training steps only
(the trainer's own figure), after the first logging interval.
"""

from __future__ import annotations

import argparse
import statistics

from common import REPO, report
from train_throughput import corpus, step_times

from charlm.model import ModelConfig
from charlm.training import PRESETS, TrainConfig
from charlm.vocab import Vocabulary


def chars_per_s(text: str, preset: str, steps: int, signals: str) -> float:
    p = PRESETS[preset]
    vocab = Vocabulary.from_text(text)
    mcfg = ModelConfig(vocab_size=len(vocab), **p.model)
    tcfg = TrainConfig(
        **{**p.train, "max_steps": steps, "eval_interval": 10**6, "patience": None},
        signals=signals,
    )
    times = step_times(mcfg, tcfg, vocab, text)
    first = tcfg.log_interval  # time from the end of the first logged interval
    timed = steps - first
    return tcfg.batch_size * tcfg.seq_len * timed / (times[-1] - times[first - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    large_text, large_name = corpus()
    alphabet = (REPO / "corpora" / "alphabet.txt").read_text(encoding="utf-8")
    cases = [
        ("tiny", "alphabet", alphabet, args.steps * 5),
        ("large", large_name, large_text, args.steps),
    ]
    rows = []
    for preset, name, text, steps in cases:
        on: list[float] = []
        off: list[float] = []
        for r in range(args.repeats):
            order = ("on", "off") if r % 2 == 0 else ("off", "on")
            for signals in order:
                cps = chars_per_s(text, preset, steps, signals)
                (on if signals == "on" else off).append(cps)
                print(f"{preset} / {name}, repeat {r + 1}, signals {signals}: {cps:,.0f} chars/s")
        ratios = [a / b for a, b in zip(on, off, strict=True)]
        p = PRESETS[preset]
        rows.append(
            f"| `{preset}` ({p.model['num_layers']} x {p.model['hidden_size']}, window "
            f"{p.train['seq_len']}), {name} | every {p.train['log_interval']} steps "
            f"| {statistics.median(off):,.0f} | {statistics.median(on):,.0f} "
            f"| {100 * (1 - statistics.median(ratios)):.1f}% |"
        )
    table = (
        "| preset, corpus | logging interval | chars/s, signals off | chars/s, signals on "
        "| cost (median of per-repeat ratios) |\n|---|---|---|---|---|\n" + "\n".join(rows)
    )
    notes = (
        f"{args.repeats} repeats of {args.steps * 5} steps (tiny) and {args.steps} steps "
        "(large), the two settings in alternating order within each repeat. `signals off` "
        "still runs the detectors on the loss and the gradient norm; `on` adds per-layer "
        "gradient norms, update-to-weight ratios and the gate probe (8 streams, recomputed "
        "step by step) at each logging step."
    )
    report("Cost of the training signals", table, notes, write=not args.no_write)


if __name__ == "__main__":
    main()
