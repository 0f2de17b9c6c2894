"""Turning inference results into what a person reads at a terminal: tables and lines.

Pure functions from result objects to strings; no model, no I/O. (The machine-readable
form, `--json`, is the result objects' own JSON: see `charlm/inference/results.py`.)
"""

from __future__ import annotations

import statistics

from charlm.inference.results import (
    ActivationResult,
    EvalResult,
    ModelCard,
    Prediction,
    ScoreResult,
)

__all__ = [
    "activations_text",
    "card_text",
    "eval_text",
    "num",
    "predict_text",
    "quoted",
    "score_summary",
    "score_table",
    "show_char",
    "wrap",
]

_BAR = 20


def num(value: float) -> str:
    """A loss or rate with four significant figures, in scientific form when tiny."""
    if value != 0 and abs(value) < 0.01:
        return f"{value:.3e}"
    return f"{value:.4f}"


def show_char(c: str) -> str:
    """A character as a short visible token: letters as themselves, the rest escaped."""
    if c == " ":
        return "␣"
    if c.isprintable():
        return c
    return c.encode("unicode_escape").decode("ascii")


def _bar(p: float) -> str:
    return "█" * round(p * _BAR)


def predict_text(text: str, result: Prediction) -> str:
    lines = [f"after {quoted(text)}, the next character is:"]
    for d in result.next:
        lines.append(f"  {show_char(d.char):>4}  {d.prob:9.6f}  {_bar(d.prob)}")
    if result.steps:
        lines.append(
            f"greedy continuation ({len(result.steps)} chars): {quoted(result.continuation)}"
        )
        cells = [f"{show_char(s.char)} {s.prob:.4f}" for s in result.steps]
        lines.extend(wrap(cells))
    return "\n".join(lines)


def score_table(result: ScoreResult) -> str:
    header = "  pos  char      prob  rank   top  top prob    bits  alternatives"
    lines = [header]
    for s in result.steps:
        alts = "  ".join(f"{show_char(a.char)} {a.prob:.3f}" for a in s.top)
        mark = " " if s.rank == 1 else "*"
        lines.append(
            f"{s.position:>5}  {show_char(s.char):>4}  {s.prob:8.5f}  {s.rank:>4}{mark} "
            f"{show_char(s.top_char):>4}  {s.top_prob:8.5f}  {s.entropy_bits:6.3f}  {alts}"
        )
    lines.append(score_summary(result))
    lines.append(
        "(* the model's top choice was another character; bits = entropy of its prediction)"
    )
    return "\n".join(lines)


def score_summary(result: ScoreResult) -> str:
    probs = [s.prob for s in result.steps]
    worst = result.steps[result.min_position - 1]
    return (
        f"{len(probs)} steps: {num(result.bits_per_char)} bits/char, median prob "
        f"{statistics.median(probs):.5f}, min prob {result.min_prob:.5f} at position "
        f"{result.min_position} '{show_char(worst.char)}'"
    )


def card_text(card: ModelCard) -> str:
    a, t = card.architecture, card.training
    lines = [
        f"{card.name}: {card.parameters:,} parameters; embedding {a.get('embedding_dim')}, "
        f"{a.get('num_layers')} x {a.get('hidden_size')} {str(a.get('cell', 'lstm')).upper()}, "
        f"dropout {a.get('dropout')}",
        f"vocabulary ({card.vocab_size}): "
        + "".join(show_char(c) for c in card.vocab[:200])
        + (" …" if card.vocab_size > 200 else ""),
    ]
    if t.step is not None:
        best = num(t.best_val_loss) if t.best_val_loss is not None else "?"
        lines.append(
            f"trained {t.step} steps on {t.corpus or '?'} (preset {t.preset or '?'}); best "
            f"validation loss {best} nats/char at step {t.best_step}"
        )
    return "\n".join(lines)


def eval_text(path: str, result: EvalResult) -> str:
    return (
        f"{path}: {num(result.loss)} nats/char, {num(result.bits_per_char)} bits/char "
        f"over {result.chars} predicted characters"
    )


def quoted(text: str, limit: int = 60) -> str:
    """`text` in double quotes on one line: invisible characters escaped (`show_char`),
    spaces kept, only its last `limit` characters when longer."""
    shown = "".join(show_char(c) if c != " " else " " for c in text)
    if len(shown) > limit:
        shown = "…" + shown[-limit:]
    return f'"{shown}"'


def wrap(cells: list[str], width: int = 78) -> list[str]:
    """Cells joined into lines of at most `width` characters."""
    lines: list[str] = []
    line = " "
    for cell in cells:
        if len(line) + len(cell) + 2 > width:
            lines.append(line)
            line = " "
        line += " " + cell + " "
    if line.strip():
        lines.append(line)
    return lines


def activations_text(result: ActivationResult, layers: int) -> str:
    """The units most correlated with each feature, then the units asked for."""
    lines = [
        f"layer {result.layer} (of 0 to {layers - 1}), {result.kind}, {result.size} units, "
        f"{len(result.text):,} characters",
        "the units that follow each feature of the text most closely (Pearson r):",
    ]
    width = max(len(f.description) for f in result.features)
    for f in result.features:
        found = "  ".join(f"{c.cell:>4} {c.r:+.2f}" for c in f.cells) or "(constant in this text)"
        lines.append(f"  {f.description:<{width}}  {found}")
    for s in result.series:
        values = ", ".join(f"{v:+.2f}" for v in s.values[:12])
        more = ", ..." if len(s.values) > 12 else ""
        lines.append(f"unit {s.cell}: {values}{more}")
    return "\n".join(lines)
