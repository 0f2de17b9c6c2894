"""Every error charlm raises on purpose.

Each one says what went wrong and, where there is one, what to do about it. The CLI
prints them as one line and exits with code 2; the service maps them to HTTP status
codes in a single table.

    CharLMError
    ├── ConfigError                    an impossible setting or flag combination
    ├── CorpusError                    a corpus file that cannot be used
    │   └── CorpusDownloadError        a download failed or its checksum did not match
    ├── TrainingError                  training cannot go on (the loss became NaN)
    ├── InputError                     text or a request a model cannot take
    │   ├── UnknownCharacterError      characters outside the model's vocabulary
    │   ├── TextTooLongError           text over a configured length limit
    │   ├── LimitExceededError         a requested amount over a configured cap
    │   │   └── TooManyItemsError      more items in one request than the cap
    │   ├── ModelNameError             a name that breaks the model-name rule
    │   └── AmbiguousModelError        no model named while several are loaded
    ├── CheckpointError                a checkpoint that cannot be read or written
    │   ├── CheckpointNotFoundError    no checkpoint where one was expected
    │   │   └── UnknownModelError      no model of that name is served
    │   ├── CheckpointExistsError      refusing to overwrite an existing checkpoint
    │   ├── CheckpointLockedError      another training run is writing the directory
    │   └── IncompatibleCheckpointError  wrong format version, shapes or vocabulary
    ├── NoModelError                   no model is loaded at all
    └── OverloadedError                too many requests in progress
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AmbiguousModelError",
    "CharLMError",
    "CheckpointError",
    "CheckpointExistsError",
    "CheckpointLockedError",
    "CheckpointNotFoundError",
    "ConfigError",
    "CorpusDownloadError",
    "CorpusError",
    "IncompatibleCheckpointError",
    "InputError",
    "LimitExceededError",
    "ModelNameError",
    "NoModelError",
    "OverloadedError",
    "TextTooLongError",
    "TooManyItemsError",
    "TrainingError",
    "UnknownCharacterError",
    "UnknownModelError",
]


class CharLMError(Exception):
    """Base class of every error charlm raises on purpose."""


class ConfigError(CharLMError):
    """A configuration value or combination of flags that cannot work."""


class CorpusError(CharLMError):
    """A corpus file that is missing, empty, binary or not UTF-8."""


class CorpusDownloadError(CorpusError):
    """A corpus download that failed or did not match its checksum."""


class TrainingError(CharLMError):
    """Training cannot go on (the loss became NaN or infinite)."""


class InputError(CharLMError):
    """Text given to a model that it cannot process."""


class UnknownCharacterError(InputError):
    """Characters that are not in the model's vocabulary.

    `unknown` holds (character, position) pairs in order of position.
    """

    MAX_CHARS = 10
    MAX_POSITIONS = 3

    def __init__(self, unknown: Sequence[tuple[str, int]], *, what: str = "text") -> None:
        self.unknown = list(unknown)
        positions: dict[str, list[int]] = {}
        for char, pos in self.unknown:
            positions.setdefault(char, []).append(pos)
        parts = []
        for char, where in list(positions.items())[: self.MAX_CHARS]:
            shown = ", ".join(map(str, where[: self.MAX_POSITIONS]))
            more = f" and {len(where) - self.MAX_POSITIONS} more" if len(where) > 3 else ""
            noun = "position" if len(where) == 1 else "positions"
            parts.append(f"{char!r} at {noun} {shown}{more}")
        if len(positions) > self.MAX_CHARS:
            parts.append(f"and {len(positions) - self.MAX_CHARS} more distinct characters")
        noun = "a character" if len(positions) == 1 else "characters"
        super().__init__(f"{what} has {noun} the model has never seen: {'; '.join(parts)}")


class TextTooLongError(InputError):
    """Text longer than a configured limit; `flag`, where one is given, is the setting
    that raises the limit."""

    def __init__(
        self, length: int, limit: int, *, what: str = "text", flag: str | None = None
    ) -> None:
        self.length = length
        self.limit = limit
        self.flag = flag
        super().__init__(f"{what} is {length} characters long; the limit is {limit}{_raise(flag)}")


class LimitExceededError(InputError):
    """A requested amount (characters to generate, alternatives, ...) over its cap;
    `flag`, where one is given, is the setting that raises the cap."""

    def __init__(self, name: str, value: int, limit: int, *, flag: str | None = None) -> None:
        self.name = name
        self.value = value
        self.limit = limit
        self.flag = flag
        super().__init__(f"{name} is {value}; the limit is {limit}{_raise(flag)}")


def _raise(flag: str | None) -> str:
    return f" (set by {flag})" if flag else ""


class TooManyItemsError(LimitExceededError):
    """More items (answers to check, ...) in one request than its cap: the request is
    too large, rather than asking for too much."""


class ModelNameError(InputError):
    """A name that breaks the model-name rule of `charlm.names` ('../x', 'my notes')."""


class AmbiguousModelError(InputError):
    """No model named in a request while several are loaded."""


class NoModelError(CharLMError):
    """No model is loaded."""


class OverloadedError(CharLMError):
    """More requests in progress than the configured limit."""


class CheckpointError(CharLMError):
    """A checkpoint that cannot be read or written."""


class CheckpointNotFoundError(CheckpointError):
    """No checkpoint where one was expected."""


class CheckpointExistsError(CheckpointError):
    """A new run would replace an existing checkpoint."""


class CheckpointLockedError(CheckpointError):
    """Another training run holds the checkpoint directory's lock."""


class UnknownModelError(CheckpointNotFoundError):
    """No model of the requested name is served."""


class IncompatibleCheckpointError(CheckpointError):
    """A checkpoint with the wrong format version, shapes or vocabulary."""
