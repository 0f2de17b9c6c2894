"""Task corpora: training text whose every answer is known, and held-out questions.

`make_task(kind, config, seed)` draws a `TaskCorpus` (training text and held-out
`AnswerItem`s) from `random.Random(seed)` alone, so the same seed gives the same files
on every machine; `write_task` writes both. The kinds and their settings
(`charlm/tasks/configs.py`):

- `cycle`: the first K symbols repeated, no newlines. A held-out prompt is a slice of
  the cycle (1 to K symbols, from any offset) and its answer the symbol after it; field
  `context` (the prompt's length).
- `counting`: the line `0.00,0.05,...,1.00` repeated. A held-out prompt is the line up
  to a value and its comma, the answer the next value (here the answer follows a comma,
  not '='); field `index` (the answer's place in the line). Values are exact decimals.
- `functions`: `x1,y1;...;xn,yn=NAME` with NAME line, parabola or sqrt; the answer is the
  name. x values keep the order they were drawn in (not sorted): the model must judge
  the shape from unordered points. x is drawn on the grid of shown decimals and y is
  computed from the shown x, so the named function fits the points within rounding
  (noise 0). Field `points` (n; held-out counts go past the training ones).
- `latch`: `KEY` + N noise symbols + `=` + label, where the label is the key; the
  model must carry the key across the noise. Field `gap` (N).

In the line-based kinds the answer is what follows the last `=` of a line (`counting`:
the last comma); a held-out prompt starts with "\\n", the start of a line as the model
sees it in the stream, and ends just before the answer, which excludes the newline.

The training text and the held-out items come from two streams of the seeded RNG, so
held-out lines are drawn like training lines but are not copies of them (in small
spaces they may coincide by chance). Held-out items are balanced (the same number per
answer class) and shuffled.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from charlm._config import MAX_SEED, check_int
from charlm.errors import ConfigError
from charlm.tasks.answers import AnswerItem, write_answers, write_text_atomically
from charlm.tasks.configs import (
    CountingConfig,
    CycleConfig,
    FunctionsConfig,
    LatchConfig,
    TaskConfig,
)

__all__ = ["FUNCTIONS", "TASK_KINDS", "TaskCorpus", "heldout_path", "make_task", "write_task"]

FUNCTIONS: dict[str, Callable[[float], float]] = {
    "line": lambda x: x,
    "parabola": lambda x: x * x,
    "sqrt": math.sqrt,
}
"""The functions' names and the feature f(x) in y = k * f(x) + b."""


@dataclass(frozen=True)
class TaskCorpus:
    """A task's training text and its held-out questions."""

    kind: str
    train_text: str
    heldout: list[AnswerItem]

    @property
    def lines(self) -> int:
        return self.train_text.count("\n")


Maker = Callable[[Any, random.Random, random.Random], tuple[str, list[AnswerItem]]]


def make_task(kind: str, config: TaskConfig | None = None, seed: int = 0) -> TaskCorpus:
    """The corpus of `kind` drawn with `config` (None: its defaults) from `seed`."""
    if kind not in TASK_KINDS:
        raise ConfigError(f"unknown task kind {kind!r}; the kinds are {', '.join(TASK_KINDS)}")
    cls, maker = TASK_KINDS[kind], _MAKERS[kind]
    config = cls() if config is None else config
    if type(config) is not cls:
        raise ConfigError(f"{kind} takes a {cls.__name__}, got {type(config).__name__}")
    check_int("seed", seed, 0, MAX_SEED)
    master = random.Random(seed)
    train = random.Random(master.getrandbits(64))
    held = random.Random(master.getrandbits(64))
    text, items = maker(config, train, held)
    held.shuffle(items)
    return TaskCorpus(kind, text, items)


def heldout_path(out: str | Path) -> Path:
    """Where the held-out file of training text `out` goes: `data/x.txt` ->
    `data/x.heldout.tsv`."""
    p = Path(out)
    if not p.stem:
        raise ConfigError(f"--out {out}: give a file name")
    return p.with_name(p.stem + ".heldout.tsv")


def write_task(corpus: TaskCorpus, out: str | Path) -> tuple[Path, Path]:
    """Write the training text to `out` and the held-out items beside it (see
    `heldout_path`), each file whole or not at all; the two paths."""
    held = heldout_path(out)
    return write_text_atomically(Path(out), corpus.train_text), write_answers(held, corpus.heldout)


# -- the kinds ----------------------------------------------------------------------


def _cycle(
    c: CycleConfig, train: random.Random, held: random.Random
) -> tuple[str, list[AnswerItem]]:
    a = c.alphabet
    k = len(a)
    text = (a * (c.length // k + 1))[: c.length]
    items = []
    for answer in range(k):
        for _ in range(c.heldout_per_class):
            n = held.randint(1, k)
            prompt = "".join(a[(answer - n + j) % k] for j in range(n))
            items.append(AnswerItem(prompt, a[answer], {"context": str(n)}))
    return text, items


def _counting(
    c: CountingConfig, train: random.Random, held: random.Random
) -> tuple[str, list[AnswerItem]]:
    start, step = Decimal(repr(float(c.start))), Decimal(repr(float(c.step)))
    unit = Decimal(1).scaleb(-c.digits)
    values = [_shown(start + i * step, unit) for i in range(c.count)]
    text = (",".join(values) + "\n") * c.repeats
    items = [
        AnswerItem("\n" + ",".join(values[:i]) + ",", values[i], {"index": str(i)})
        for _ in range(c.heldout_rounds)
        for i in range(1, len(values))
    ]
    return text, items


def _shown(value: Decimal, unit: Decimal) -> str:
    text = f"{value.quantize(unit, rounding=ROUND_HALF_EVEN):f}"
    return text.removeprefix("-") if Decimal(text) == 0 else text


def _functions(
    c: FunctionsConfig, train: random.Random, held: random.Random
) -> tuple[str, list[AnswerItem]]:
    low, high = c.point_range
    names = list(FUNCTIONS)
    lines = []
    for _ in range(c.lines):
        name = train.choice(names)
        lines.append(f"{_points(c, train, name, train.randint(low, high))}={name}\n")
    items = [
        AnswerItem(f"\n{_points(c, held, name, n)}=", name, {"points": str(n)})
        for n in range(c.heldout_range[0], c.heldout_range[1] + 1)
        for name in names
        for _ in range(c.heldout_per_class)
    ]
    return "".join(lines), items


def _points(c: FunctionsConfig, rng: random.Random, name: str, n: int) -> str:
    """n points of y = k * f(x) + b, k and b drawn for this line, x in draw order."""
    feature = FUNCTIONS[name]
    k = rng.uniform(float(c.k_min), float(c.k_max))
    b = rng.uniform(float(c.b_min), float(c.b_max))
    first, last = c.x_grid
    scale = 10**c.decimals
    out = []
    for _ in range(n):
        x = rng.randint(first, last) / scale
        y = k * feature(x) + b
        if c.noise > 0:
            y += rng.gauss(0.0, float(c.noise))
        out.append(f"{_number(x, c.decimals)},{_number(y, c.decimals)}")
    return ";".join(out)


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text.removeprefix("-") if float(text) == 0 else text


def _latch(
    c: LatchConfig, train: random.Random, held: random.Random
) -> tuple[str, list[AnswerItem]]:
    def body(rng: random.Random, label: str) -> str:
        return label + "".join(rng.choices(c.noise, k=c.gap)) + "="

    lines = [body(train, label) + label + "\n" for label in train.choices(c.labels, k=c.lines)]
    items = [
        AnswerItem("\n" + body(held, label), label, {"gap": str(c.gap)})
        for label in c.labels
        for _ in range(c.heldout_per_class)
    ]
    return "".join(lines), items


TASK_KINDS: dict[str, type[TaskConfig]] = {
    "cycle": CycleConfig,
    "counting": CountingConfig,
    "functions": FunctionsConfig,
    "latch": LatchConfig,
}
"""Each kind of task corpus and its config class."""

_MAKERS: dict[str, Maker] = {
    "cycle": _cycle,
    "counting": _counting,
    "functions": _functions,
    "latch": _latch,
}
