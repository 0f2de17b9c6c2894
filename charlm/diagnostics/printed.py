"""The loss in a printed line: one extraction for the lines loops print (and logs that
are not columns), whatever their wording.

A line is read as tokens: numbers, words, `:` or `=`, brackets, other marks. A name is a
run of words just before a number, with `:`, `=`, `[` or `(` between them (`loss:
0.5`, `Error = 0.123`, `Step [100/600]`, `train loss 0.7`); in `3/10` the number is 3;
`tensor(0.1234, dtype=..., grad_fn=<...>)` is its number. Each name is read as a field
of `fields.FIELDS` (its whole name, else its last word), or kept as it is. A line of
numbers alone is the loss (one number) or step and loss (two, the first whole); numbers
beside words with no name before them (a date, a count) are not read.
"""

from __future__ import annotations

import re
from typing import Any

from charlm.diagnostics.fields import name_of, normalize

__all__ = ["read_line", "tokens"]

_TOKEN = re.compile(
    r"""
    (?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?(?:/\d+)?(?![\w.])
           |[-+]?(?:nan|inf(?:inity)?)\b)
   |(?P<word>[A-Za-z_][A-Za-z0-9_]*(?:[./-][A-Za-z_][A-Za-z0-9_]*)*)
   |(?P<sep>[:=])
   |(?P<open>[\[(])
   |(?P<other>\S)
    """,
    re.VERBOSE | re.IGNORECASE,
)
_TENSOR = re.compile(r"\btensor\(\s*([^\s,()]+)[^()]*\)")
"""A printed PyTorch scalar, `tensor(0.1234, dtype=..., grad_fn=<...>)`: its value."""


def tokens(text: str) -> tuple[list[tuple[list[str], str]], list[str], bool]:
    """A printed line's (name words, number) pairs, its numbers with no name before
    them, and whether it has any word at all. A name is a run of words just before a
    number (with `:`, `=`, `[` or `(` between them: `loss: 0.5`, `Step [100/600]`); in
    `3/10` the number is 3."""
    named: list[tuple[list[str], str]] = []
    bare: list[str] = []
    words: list[str] = []  # the run of words before the next number, if unbroken
    after_sep = wordy = False
    for m in _TOKEN.finditer(_TENSOR.sub(r" \1 ", text)):
        kind, token = m.lastgroup, m.group()
        if kind == "num":
            value = token.split("/")[0]
            if words:
                named.append((words, value))
            else:
                bare.append(value)
            words, after_sep = [], False
        elif kind == "word":
            wordy = True
            words = [*words, token] if words and not after_sep else [token]
            after_sep = False
        elif kind == "sep":
            after_sep = bool(words)
        elif kind == "other":
            words, after_sep = [], False
    return named, bare, wordy


def read_line(text: str) -> tuple[dict[str, Any], list[tuple[str, str | None]]]:
    """The values of a printed line by field (numbers as text; other names kept as they
    are, normalized), and each name it read with the field it was read as (None: kept)."""
    named, bare, wordy = tokens(text)
    values: dict[str, Any] = {}
    names: list[tuple[str, str | None]] = []
    for words, number in named:
        name = " ".join(words)
        f = name_of(words)
        if f is not None and f not in values:
            values[f] = number
            names.append((name, f))
        elif f is None and normalize(name) not in values:
            values[normalize(name)] = number
            names.append((normalize(name), None))
    if not wordy and "loss" not in values and len(bare) in (1, 2):
        if len(bare) == 1:
            values["loss"] = bare[0]
            names.append(("a number alone", "loss"))
        else:
            values["step"], values["loss"] = bare
            names.append(("two numbers alone", "step and loss"))
    return values, names
