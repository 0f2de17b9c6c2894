"""The task subcommands: `charlm corpus make KIND` and `charlm lab` (with the arguments
they add to the parser), `charlm accuracy`, and the text they print (`--json`: the library's
`AccuracyResult` as it is, the same JSON that `POST /accuracy` answers)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from charlm import checkpoint
from charlm.errors import InputError
from charlm.flags import HelpFormatter, add_dataclass_flags, given
from charlm.inference import Predictor
from charlm.lab import EXPERIMENTS, run_experiment, write_report
from charlm.runtime import Runtime
from charlm.tasks import (
    TASK_KINDS,
    AccuracyResult,
    AnswerItem,
    answer_accuracy,
    make_task,
    read_answers,
    write_task,
)

__all__ = [
    "accuracy_text",
    "add_corpus_make_arguments",
    "add_lab_arguments",
    "cmd_accuracy",
    "cmd_corpus_make",
    "cmd_lab",
]

_SHOWN_MISTAKES = 5


def add_corpus_make_arguments(csub: Any) -> None:
    """`charlm corpus make KIND --out FILE [--seed S] [KIND's options]`."""
    what = (
        "write a task corpus (training text whose answers are known) and its held-out "
        "answer file, FILE's stem + .heldout.tsv; the same seed writes the same files"
    )
    mk = csub.add_parser(
        "make",
        help=what,
        description=f"{what}. Each KIND has its own options: charlm corpus make KIND --help",
        formatter_class=HelpFormatter,
    )
    kinds = mk.add_subparsers(dest="task_kind", required=True, metavar="KIND")
    for kind, config in TASK_KINDS.items():
        about = " ".join((config.__doc__ or "").split())
        k = kinds.add_parser(kind, help=about, description=about, formatter_class=HelpFormatter)
        k.add_argument(
            "--out",
            type=Path,
            metavar="FILE",
            required=True,
            default=argparse.SUPPRESS,
            help="the training text; the held-out answers go beside it (x.txt: x.heldout.tsv)",
        )
        k.add_argument("--seed", type=int, default=0, metavar="N", help="random seed")
        add_dataclass_flags(k.add_argument_group(f"{kind} options"), config)


def add_lab_arguments(p: argparse.ArgumentParser) -> None:
    """`charlm lab NAME [--quick] [--repeats N] [--out DIR] [--json]`."""
    p.add_argument("name", choices=list(EXPERIMENTS), help="the experiment")
    p.add_argument(
        "--quick", action="store_true", help="the few-minute version (fewer seeds, steps, gaps)"
    )
    p.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="seeds per set-up (latching: repeats per cell, gap and split)",
    )
    p.add_argument(
        "--out", type=Path, metavar="DIR", default=Path("lab"), help="where to write the results"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")


_SHOWN_PROMPT = 40


def cmd_corpus_make(args: argparse.Namespace) -> int:
    cls = TASK_KINDS[args.task_kind]
    config = cls(**given(args, [f.name for f in fields(cls)]))  # type: ignore[arg-type]
    corpus = make_task(args.task_kind, config, args.seed)
    text, held = write_task(corpus, args.out)
    print(text)
    print(held)
    print(
        f"{args.task_kind}, seed {args.seed}: {len(corpus.train_text):,} chars in "
        f"{corpus.lines:,} lines; {len(corpus.heldout):,} held-out items"
    )
    return 0


def cmd_accuracy(args: argparse.Namespace) -> int:
    items = read_answers(args.answers)  # a malformed file fails before the model loads
    where = checkpoint.resolve(args.checkpoint, args.checkpoints_dir)
    Runtime.choose(args.device, threads=args.threads)
    predictor = Predictor.from_checkpoint(where, args.device)
    try:
        result = answer_accuracy(predictor, items, by=args.by)
    except InputError as e:
        raise InputError(f"answer file {args.answers}, {e}") from e
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(accuracy_text(str(args.answers), result, items))
    return 0


def accuracy_text(source: str, result: AccuracyResult, items: list[AnswerItem]) -> str:
    """The overall figures, a table per field, and the first few mistakes."""
    lines = [
        f"{result.model} on {source}: {result.correct} of {result.items} answers right "
        f"({result.accuracy:.2%}); mean answer probability {result.mean_answer_prob:.4f}"
    ]
    field = None
    for g in result.groups:
        if g.field != field:
            field = g.field
            lines += ["", f"by {field}:", "     value  items  correct  accuracy  mean prob"]
        lines.append(
            f"{g.value:>10}  {g.items:5d}  {g.correct:7d}  {g.accuracy:8.2%}  "
            f"{g.mean_answer_prob:9.4f}"
        )
    wrong = result.items - result.correct
    if wrong:
        shown = result.mistakes[:_SHOWN_MISTAKES]
        lines += ["", f"mistakes ({len(shown)} of {wrong} shown):"]
        for m in shown:
            line = items[m.item - 1].line
            name = f"line {line}" if line is not None else f"item {m.item}"
            lines.append(
                f"  {name}: {_quote(m.prompt, _SHOWN_PROMPT)} -> {_quote(m.predicted)}, "
                f"expected {_quote(m.answer)} (p {m.answer_prob:.4f})"
            )
    return "\n".join(lines)


def _quote(text: str, keep: int | None = None) -> str:
    """Text in quotes with newlines, tabs and backslashes escaped; only its last `keep`
    characters (after '…') when it is longer."""
    cut = keep is not None and len(text) > keep
    shown = text[-keep:] if cut and keep is not None else text
    escaped = shown.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    return ("…" if cut else "") + f'"{escaped}"'


def cmd_lab(args: argparse.Namespace) -> int:
    """Run one lab experiment and write its markdown, CSV, JSON and PNG under --out."""
    if not args.json:
        print(f"running {args.name}{' (quick)' if args.quick else ''}...", file=sys.stderr)
    report = run_experiment(args.name, quick=args.quick, repeats=args.repeats)
    written = write_report(report, args.out)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
        return 0
    print(report.markdown())
    for path in written:
        print(f"wrote {path}")
    return 0
