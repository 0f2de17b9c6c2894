"""Simple features of a text, one value per character, to find interpretable units by.

Each feature describes the reader's situation *after* reading the character at a
position, which is what a recurrent unit's activation there can know:

    in_double_quotes   1 from an opening " up to (not including) its closing "
    in_single_quotes   the same for '
    line_position      characters into the line: since the last newline (0 for its first)
    after_newline      1 where the character just read is a newline
    bracket_depth      how many ( [ { are open
    word_position      characters into the word: letters and digits in a row, to here

Quotes toggle: every quote character opens or closes, as a unit would have to track
them. Karpathy, Johnson and Fei-Fei (2015) found LSTM cells that follow the first
three in prose and source code.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURES", "text_features"]

FEATURES: dict[str, str] = {
    "in_double_quotes": 'inside double quotes ("...")',
    "in_single_quotes": "inside single quotes ('...')",
    "line_position": "characters into the line",
    "after_newline": "the character just read is a newline",
    "bracket_depth": "brackets ( [ { open",
    "word_position": "characters into the word (letters and digits)",
}

_OPEN, _CLOSE = "([{", ")]}"


def text_features(text: str) -> dict[str, np.ndarray]:
    """Each feature of `FEATURES` over `text`: a float64 array, one value per character."""
    n = len(text)
    out = {name: np.zeros(n) for name in FEATURES}
    double = single = False
    column = depth = word = 0
    for i, c in enumerate(text):
        if c == '"':
            double = not double
        elif c == "'":
            single = not single
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth = max(0, depth - 1)
        word = word + 1 if c.isalnum() else 0
        out["in_double_quotes"][i] = double
        out["in_single_quotes"][i] = single
        out["line_position"][i] = column
        out["after_newline"][i] = c == "\n"
        out["bracket_depth"][i] = depth
        out["word_position"][i] = word
        column = 0 if c == "\n" else column + 1
    return out
