"""Characters outside a model's vocabulary, and what a reading does with them.

Text pasted from the web brings characters a model never saw in training: a curly
quote (U+2019) for ', a non-breaking space for a space. Each question about a text
(`Predictor.predict`, `score`, the log-probabilities of `charlm.inference.logprobs`)
takes a policy for them:

    refuse    the default: `UnknownCharacterError`, naming each one and its position
    skip      the character is not fed to the model; reading goes on from the state
              before it, so the next character is predicted as if it were not there.
              The answer lists it (`unknown`) at its place in the text as given.
    replace   each one is read as `replacement`, a character the model knows; the
              answer lists what was replaced, and where.

Positions in answers are always positions in the text as given (code points), so a
page that shows the text can put each step where it belongs, skipped characters and all.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Generator
from dataclasses import dataclass

from charlm._config import check_choice
from charlm.errors import InputError, UnknownCharacterError
from charlm.inference.results import ScoreResult, ScoreStep, UnknownChar
from charlm.vocab import Vocabulary

__all__ = ["ON_UNKNOWN", "Reading", "read_text", "remap_score"]

ON_UNKNOWN = ("refuse", "skip", "replace")


@dataclass(frozen=True)
class Reading:
    """A text as the model will read it under a policy for unknown characters."""

    text: str  # as given
    read: str  # what the model is fed
    positions: tuple[int, ...] | None  # where each fed character is in `text`; None: same
    unknown: tuple[UnknownChar, ...]

    def position(self, i: int) -> int:
        """Where the `i`th fed character is in the text as given."""
        return i if self.positions is None else self.positions[i]

    def fed_index(self, position: int) -> int:
        """The index among the fed characters of the first one at or after `position`
        of the text as given."""
        return position if self.positions is None else bisect_left(self.positions, position)


def read_text(
    vocab: Vocabulary,
    text: str,
    on_unknown: str = "refuse",
    replacement: str | None = None,
    *,
    what: str = "text",
    min_chars: int = 1,
) -> Reading:
    """`text` checked, under the policy `on_unknown` ("refuse", "skip", or "replace"
    with `replacement`), with at least `min_chars` characters for the model to read.
    Raises `UnknownCharacterError` (refuse), `InputError` or `ConfigError` for a text,
    policy or replacement it cannot read, before anything is read."""
    if not isinstance(text, str):
        raise InputError(f"{what} must be a string")
    check_choice("on_unknown", on_unknown, ON_UNKNOWN)
    _check_replacement(vocab, on_unknown, replacement)
    if len(text) < min_chars:
        if not text:
            raise InputError(f"{what} is empty; give at least one character")
        raise InputError(
            f"{what} needs at least {min_chars} characters (the first is context only)"
        )
    found = vocab.unknown(text)
    if not found:
        return Reading(text, text, None, ())
    if on_unknown == "refuse":
        raise UnknownCharacterError(found, what=what)
    unknown = tuple(UnknownChar(char=c, position=i) for c, i in found)
    if on_unknown == "replace":
        chars = list(text)
        for _, i in found:
            chars[i] = str(replacement)
        return Reading(text, "".join(chars), None, unknown)
    skipped = {i for _, i in found}
    kept = tuple(i for i in range(len(text)) if i not in skipped)
    if len(kept) < min_chars:
        raise InputError(
            f"{what} has {len(kept)} character{'' if len(kept) == 1 else 's'} the model "
            f"knows once the {len(found)} unknown ones are skipped; {min_chars} are needed"
        )
    return Reading(text, "".join(text[i] for i in kept), kept, unknown)


def _check_replacement(vocab: Vocabulary, on_unknown: str, replacement: str | None) -> None:
    if on_unknown != "replace":
        if replacement is not None:
            raise InputError(
                f"replacement is only used when on_unknown is 'replace' (it is {on_unknown!r})"
            )
        return
    if not isinstance(replacement, str) or len(replacement) != 1:
        raise InputError(
            f"replacement must be one character when on_unknown is 'replace'; got {replacement!r}"
        )
    if replacement not in vocab:
        raise InputError(f"replacement {replacement!r} is not in the model's vocabulary itself")


def remap_score(
    reading: Reading, pieces: Generator[list[ScoreStep], None, ScoreResult]
) -> Generator[list[ScoreStep], None, ScoreResult]:
    """`score_pieces` of `reading.read`, with positions in the text as given, its text
    that text, and its unknown characters listed."""
    while True:
        try:
            steps = next(pieces)
        except StopIteration as done:
            result: ScoreResult = done.value
            break
        if reading.positions is not None:
            steps = [s.model_copy(update={"position": reading.position(s.position)}) for s in steps]
        yield steps
    return result.model_copy(
        update={
            "text": reading.text,
            "min_position": reading.position(result.min_position),
            "unknown": list(reading.unknown),
        }
    )
