"""The character vocabulary: which characters a model knows and their ids.

Ids are the positions of the characters in sorted order, so the same text always gives
the same vocabulary. Characters outside the vocabulary are never dropped or replaced:
encoding them raises `UnknownCharacterError` naming each one and its position.
This module knows nothing about models or files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from charlm.errors import IncompatibleCheckpointError, UnknownCharacterError

__all__ = ["Vocabulary"]

_ENCODE_CHUNK = 1 << 20  # characters converted at a time by `encode_compact`


class Vocabulary:
    """An ordered set of single characters with a two-way mapping to ids."""

    def __init__(self, chars: Iterable[str]) -> None:
        self._chars: tuple[str, ...] = tuple(chars)
        self._ids: dict[str, int] = {c: i for i, c in enumerate(self._chars)}
        self._table: np.ndarray | None = None  # code point -> id, built on first use

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        """The sorted set of characters that occur in `text`."""
        return cls(sorted(set(text)))

    @classmethod
    def from_list(cls, chars: Sequence[object]) -> Vocabulary:
        """Rebuild a vocabulary saved with `to_list`, checking that it is well formed."""
        if not isinstance(chars, list | tuple):
            raise IncompatibleCheckpointError(
                f"vocabulary must be a list of characters, got {type(chars).__name__}"
            )
        if not chars:
            raise IncompatibleCheckpointError("vocabulary is empty")
        for c in chars:
            if not isinstance(c, str) or len(c) != 1 or "\ud800" <= c <= "\udfff":
                shown = ascii(c) if isinstance(c, str) and len(c) < 20 else type(c).__name__
                raise IncompatibleCheckpointError(
                    f"vocabulary entry {shown} is not a single character"
                )
        strs = [str(c) for c in chars]
        if len(set(strs)) != len(strs):
            raise IncompatibleCheckpointError("vocabulary lists a character twice")
        return cls(strs)

    def to_list(self) -> list[str]:
        return list(self._chars)

    @property
    def chars(self) -> tuple[str, ...]:
        return self._chars

    def __len__(self) -> int:
        return len(self._chars)

    def __contains__(self, char: object) -> bool:
        return char in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._chars == other._chars

    def __hash__(self) -> int:
        return hash(self._chars)

    def __repr__(self) -> str:
        return f"Vocabulary({''.join(self._chars)!r})"

    def unknown(self, text: str) -> list[tuple[str, int]]:
        """(character, position) for every character of `text` outside the vocabulary."""
        return [(c, i) for i, c in enumerate(text) if c not in self._ids]

    def check(self, text: str, *, what: str = "text") -> None:
        """Raise `UnknownCharacterError` if `text` has characters outside the vocabulary."""
        unknown = self.unknown(text)
        if unknown:
            raise UnknownCharacterError(unknown, what=what)

    def encode(self, text: str, *, what: str = "text") -> torch.Tensor:
        """Ids of the characters of `text`, as a 1-D int64 tensor of shape (len(text),)."""
        ids = self._ids
        try:
            return torch.tensor([ids[c] for c in text], dtype=torch.int64)
        except KeyError:
            self.check(text, what=what)
            raise  # unreachable: check() raised

    def encode_compact(self, text: str, *, what: str = "text") -> torch.Tensor:
        """`encode` into the smallest integer type that holds every id (uint8 for up to
        256 characters, else int16 or int32), for a whole corpus: one byte per character
        for most, and no per-character Python objects on the way."""
        n = len(self._chars)
        dtype = np.uint8 if n <= 256 else np.int16 if n <= 32768 else np.int32
        table = self._code_table()
        out = np.empty(len(text), dtype=dtype)
        for start in range(0, len(text), _ENCODE_CHUNK):
            piece = text[start : start + _ENCODE_CHUNK]
            codes = np.frombuffer(piece.encode("utf-32-le", "surrogatepass"), dtype="<u4")
            codes = np.minimum(codes, len(table) - 1)  # beyond the table: the sentinel
            ids = table[codes]
            if (ids < 0).any():
                self.check(text, what=what)
            out[start : start + len(piece)] = ids
        return torch.from_numpy(out)

    def _code_table(self) -> np.ndarray:
        if self._table is None:
            top = max(ord(c) for c in self._chars) + 2  # the last entry stays -1
            table = np.full(top, -1, dtype=np.int32)
            for i, c in enumerate(self._chars):
                table[ord(c)] = i
            self._table = table
        return self._table

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """The text for a sequence of ids."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self._chars[i] for i in ids)

    def id_of(self, char: str) -> int:
        if char not in self._ids:
            raise UnknownCharacterError([(char, 0)])
        return self._ids[char]
