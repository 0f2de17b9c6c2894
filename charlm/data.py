"""Corpus files in, training and validation tensors out.

Owns three things: reading a corpus file as UTF-8 text (with errors that name the file
and the problem; a regular file of at most `MAX_TEXT_BYTES`, see `charlm.files`),
cutting it into a training and a validation split, and laying the training split out as
parallel contiguous streams for truncated backpropagation through time. It knows the
vocabulary but nothing about models.

The validation split. The corpus is cut into `G` equal groups (as many as fit with at
least `GROUP_CHARS` characters each, at most `MAX_GROUPS`), and the last `val_fraction`
of every group is held out. Validation text therefore comes from the beginning, middle
and end of the corpus alike instead of from one end of it, which matters for corpora
whose style drifts (a play's acts, a log's dates). `split="tail"` holds out the last
`val_fraction` of the corpus instead, as nanoGPT does, for comparable figures. A corpus
whose held-out part would be shorter than `MIN_VAL_CHARS` is too small to split: it is
evaluated on its training text, and the split says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from charlm.errors import ConfigError, CorpusError
from charlm.files import FileKind, read_regular

if TYPE_CHECKING:
    pass

__all__ = [
    "GROUP_CHARS",
    "MAX_GROUPS",
    "MAX_TEXT_BYTES",
    "MIN_VAL_CHARS",
    "IdSplit",
    "RangeSplit",
    "Streams",
    "check_file",
    "read_corpus",
    "read_file_bytes",
    "split_ranges",
]

GROUP_CHARS = 10_000
MAX_GROUPS = 100
MIN_VAL_CHARS = 256
MAX_TEXT_BYTES = 2**30
"""The largest corpus read whole into memory (to evaluate on, or for `diagnose
--corpus`); `charlm train` and `charlm corpus prepare` stream a larger one instead."""
_BINARY_PROBE = 8192
_CORPORA = FileKind("corpora read whole", MAX_TEXT_BYTES, CorpusError)


def check_file(path: str | Path, what: str) -> Path:
    """`path`, if it names a file; a missing or directory path is a `CorpusError` that
    starts with `what`."""
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"{what}: no such file")
    if p.is_dir():
        raise CorpusError(f"{what}: is a directory, expected a text file")
    return p


def read_file_bytes(path: str | Path, what: str, kind: FileKind = _CORPORA) -> bytes:
    """The bytes of a text file without a leading UTF-8 byte-order mark; a missing,
    unreadable or directory path, or one that is not a regular file or is over
    `kind.max_bytes`, is a `kind.error` that starts with `what`."""
    return read_regular(check_file(path, what), what, kind).removeprefix(b"\xef\xbb\xbf")


def read_corpus(path: str | Path) -> str:
    """The text of a UTF-8 corpus file, without a leading byte-order mark."""
    p = Path(path)
    raw = read_file_bytes(p, f"corpus {p}")
    if not raw:
        raise CorpusError(f"corpus {p}: file is empty")
    if b"\x00" in raw[:_BINARY_PROBE]:
        raise CorpusError(
            f"corpus {p}: looks like a binary file (it contains NUL bytes), expected UTF-8 text"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(
            f"corpus {p}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); "
            "convert it to UTF-8 first, e.g. with iconv"
        ) from e
    if "\x00" in text:
        raise CorpusError(f"corpus {p}: contains NUL characters, expected text")
    return text


def split_ranges(n: int, val_fraction: float, mode: str = "interleaved") -> RangeSplit:
    """Where to cut a corpus of `n` characters (see the module docstring): the training
    and validation ranges, as (start, end) pairs in order."""
    if n < 2:
        raise CorpusError(f"corpus has {n} character(s); at least 2 are needed to learn from")
    n_val = int(n * val_fraction)
    if val_fraction <= 0 or n_val < MIN_VAL_CHARS or n - n_val < 2:
        return RangeSplit(train=((0, n),), val=((0, n),), held_out=False)
    if mode == "tail":
        return RangeSplit(train=((0, n - n_val),), val=((n - n_val, n),), held_out=True)
    if mode != "interleaved":
        raise CorpusError(f"unknown split mode {mode!r}; expected 'interleaved' or 'tail'")
    groups = max(1, min(MAX_GROUPS, n // GROUP_CHARS, n_val // MIN_VAL_CHARS))
    size = n // groups
    val_len = max(1, int(size * val_fraction))
    train: list[tuple[int, int]] = []
    val: list[tuple[int, int]] = []
    for g in range(groups):
        start = g * size
        end = n if g == groups - 1 else start + size
        cut = start + size - val_len
        train.append((start, cut))
        val.append((cut, start + size))
        if end > start + size:  # the remainder of an uneven division trains
            train.append((start + size, end))
    return RangeSplit(train=tuple(train), val=tuple(val), held_out=True)


@dataclass(frozen=True)
class RangeSplit:
    """A split as positions: training and validation (start, end) ranges."""

    train: tuple[tuple[int, int], ...]
    val: tuple[tuple[int, int], ...]
    held_out: bool


@dataclass(frozen=True)
class IdSplit:
    """A split of a corpus given as character ids: the training pieces (views of the
    corpus's ids, in order, read as one text) and the validation blocks."""

    train: tuple[np.ndarray, ...]
    val_blocks: tuple[np.ndarray, ...]
    held_out: bool

    @property
    def train_chars(self) -> int:
        return sum(len(p) for p in self.train)

    def train_prefix(self, n: int) -> np.ndarray:
        """The first `n` training ids (fewer if there are fewer), in memory."""
        parts, left = [], n
        for piece in self.train:
            if left <= 0:
                break
            parts.append(np.asarray(piece[:left]))
            left -= len(parts[-1])
        return np.concatenate(parts)

    @classmethod
    def of_ids(cls, ids: np.ndarray, val_fraction: float, mode: str = "interleaved") -> IdSplit:
        """Cut `ids` where `split_ranges` says; the pieces are views, not copies, so a
        memory-mapped corpus stays on disk."""
        r = split_ranges(len(ids), val_fraction, mode)
        return cls(
            train=tuple(ids[a:b] for a, b in r.train),
            val_blocks=tuple(ids[a:b] for a, b in r.val),
            held_out=r.held_out,
        )


def check_shares(batch_size: int, world: int) -> None:
    """ConfigError unless a batch of `batch_size` streams shares out evenly among `world`
    data-parallel processes."""
    if batch_size % world:
        raise ConfigError(
            f"batch size {batch_size} does not divide among {world} processes; "
            f"use a multiple of {world}"
        )


class Streams:
    """The training ids laid out as `batch_size` parallel contiguous streams.

    Stream b is the b-th of `batch_size` equal slices of the ids (the training pieces
    read as one text). An epoch walks all streams together in windows of `seq_len`,
    starting at a random offset below `seq_len` so that window boundaries move between
    epochs; the model's state is carried from one window to the next and reset at each
    epoch start. Windows are read from the pieces as they are needed, so pieces that are
    memory-mapped stay on disk; they come out as int64.

    With `world` > 1 (data-parallel training) this process serves only its share of the
    streams: rank r reads streams r * B / world to (r + 1) * B / world - 1, so the ranks
    together read exactly what one process with batch B reads.
    """

    def __init__(
        self,
        ids: torch.Tensor | np.ndarray | Sequence[np.ndarray],
        batch_size: int,
        seq_len: int,
        *,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        if isinstance(ids, torch.Tensor):
            ids = ids.numpy()
        pieces = [ids] if isinstance(ids, np.ndarray) else [p for p in ids if len(p)]
        self._pieces = pieces
        self._ends = np.cumsum([len(p) for p in pieces], dtype=np.int64)
        n = int(self._ends[-1]) - 1 if pieces else -1  # number of (input, target) pairs
        if n < 1:
            raise CorpusError("training text needs at least 2 characters")
        self.seq_len = max(1, min(seq_len, n))
        self.batch_size = max(1, min(batch_size, n // self.seq_len))
        check_shares(self.batch_size, world)
        self._length = n // self.batch_size
        share = self.batch_size // world
        self.rows = range(rank * share, (rank + 1) * share)

    @property
    def stream_len(self) -> int:
        return self._length

    def draw_offset(self, generator: torch.Generator) -> int:
        """A random start for an epoch's first window, below `seq_len`."""
        slack = self.stream_len - self.seq_len
        return int(torch.randint(0, min(self.seq_len - 1, slack) + 1, (1,), generator=generator))

    def window_starts(self, offset: int) -> range:
        """Start positions of the windows of an epoch that begins at `offset`."""
        return range(offset, self.stream_len - self.seq_len + 1, self.seq_len)

    def window(self, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets at `start` of this process's streams, (B, T) each, int64."""
        t = self.seq_len
        rows = np.stack([self._read(b * self._length + start, t + 1) for b in self.rows])
        ids = torch.from_numpy(rows.astype(np.int64))  # (B, T + 1)
        return ids[:, :-1], ids[:, 1:]

    def reset_some(
        self, state: tuple[torch.Tensor, torch.Tensor], prob: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The carried `state` ((h, c), each (L, B, H)) of this process's streams, each
        stream's zeroed with probability `prob`.

        Without this the model would see a zero state only at epoch starts and would be
        unsure right after a short prompt, which is read from zero state.
        """
        # drawn for every stream of every rank, so that all ranks draw alike
        draw = torch.rand(self.batch_size, generator=generator)
        keep = draw[self.rows.start : self.rows.stop] >= prob
        mask = keep.to(state[0].dtype).to(state[0].device).view(1, -1, 1)  # (1, B, 1)
        return state[0] * mask, state[1] * mask

    def _read(self, pos: int, n: int) -> np.ndarray:
        """`n` ids from position `pos` of the pieces read as one text."""
        if len(self._pieces) == 1:
            return self._pieces[0][pos : pos + n]
        i = int(np.searchsorted(self._ends, pos, side="right"))
        parts = []
        while n > 0:
            begin = pos - (int(self._ends[i - 1]) if i else 0)
            part = self._pieces[i][begin : begin + n]
            parts.append(part)
            n -= len(part)
            pos += len(part)
            i += 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
