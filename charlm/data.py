"""Corpus files in, training and validation tensors out.

Owns three things: reading a corpus file as UTF-8 text (with errors that name the file
and the problem), cutting it into a training and a validation split, and laying the
training split out as parallel contiguous streams for truncated backpropagation through
time. It knows the vocabulary but nothing about models.

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

from dataclasses import dataclass
from pathlib import Path

import torch

from charlm.errors import CorpusError

__all__ = [
    "GROUP_CHARS",
    "MAX_GROUPS",
    "MIN_VAL_CHARS",
    "Split",
    "Streams",
    "read_corpus",
    "read_file_bytes",
    "split_text",
]

GROUP_CHARS = 10_000
MAX_GROUPS = 100
MIN_VAL_CHARS = 256
_BINARY_PROBE = 8192


def read_file_bytes(path: str | Path, what: str) -> bytes:
    """The bytes of a text file without a leading UTF-8 byte-order mark; a missing,
    unreadable or directory path is a `CorpusError` that starts with `what`."""
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"{what}: no such file")
    if p.is_dir():
        raise CorpusError(f"{what}: is a directory, expected a text file")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise CorpusError(f"{what}: cannot read it ({e.strerror or e})") from e
    return raw.removeprefix(b"\xef\xbb\xbf")


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


@dataclass(frozen=True)
class Split:
    """Training text and validation blocks cut from one corpus.

    `val_blocks` are equal-length pieces of held-out text, each to be read as its own
    stream. When `held_out` is False the corpus was too small to split and the blocks
    are the training text itself.
    """

    train: str
    val_blocks: tuple[str, ...]
    held_out: bool

    @property
    def val_chars(self) -> int:
        return sum(len(b) for b in self.val_blocks)


def split_text(text: str, val_fraction: float, mode: str = "interleaved") -> Split:
    """Cut `text` into training text and validation blocks (see the module docstring)."""
    n = len(text)
    if n < 2:
        raise CorpusError(f"corpus has {n} character(s); at least 2 are needed to learn from")
    n_val = int(n * val_fraction)
    if val_fraction <= 0 or n_val < MIN_VAL_CHARS or n - n_val < 2:
        return Split(train=text, val_blocks=(text,), held_out=False)
    if mode == "tail":
        return Split(train=text[: n - n_val], val_blocks=(text[n - n_val :],), held_out=True)
    if mode != "interleaved":
        raise CorpusError(f"unknown split mode {mode!r}; expected 'interleaved' or 'tail'")
    groups = max(1, min(MAX_GROUPS, n // GROUP_CHARS, n_val // MIN_VAL_CHARS))
    size = n // groups
    val_len = max(1, int(size * val_fraction))
    train_parts: list[str] = []
    val_blocks: list[str] = []
    for g in range(groups):
        start = g * size
        end = n if g == groups - 1 else start + size
        cut = start + size - val_len
        train_parts.append(text[start:cut])
        val_blocks.append(text[cut : start + size])
        if end > start + size:  # the remainder of an uneven division trains
            train_parts.append(text[start + size : end])
    return Split(train="".join(train_parts), val_blocks=tuple(val_blocks), held_out=True)


class Streams:
    """The training ids laid out as `batch_size` parallel contiguous streams.

    Stream b is the b-th of `batch_size` equal slices of the ids. An epoch walks all
    streams together in windows of `seq_len`, starting at a random offset below
    `seq_len` so that window boundaries move between epochs; the model's state is
    carried from one window to the next and reset at each epoch start. The ids may be
    kept in a compact integer type (`Vocabulary.encode_compact`); windows come out as
    int64.
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int) -> None:
        n = ids.numel() - 1  # number of (input, target) pairs
        if n < 1:
            raise CorpusError("training text needs at least 2 characters")
        self.seq_len = max(1, min(seq_len, n))
        self.batch_size = max(1, min(batch_size, n // self.seq_len))
        length = n // self.batch_size
        used = length * self.batch_size
        self.x = ids[:used].view(self.batch_size, length)  # (B, S)
        self.y = ids[1 : used + 1].view(self.batch_size, length)  # (B, S)

    @property
    def stream_len(self) -> int:
        return int(self.x.shape[1])

    def draw_offset(self, generator: torch.Generator) -> int:
        """A random start for an epoch's first window, below `seq_len`."""
        slack = self.stream_len - self.seq_len
        return int(torch.randint(0, min(self.seq_len - 1, slack) + 1, (1,), generator=generator))

    def window_starts(self, offset: int) -> range:
        """Start positions of the windows of an epoch that begins at `offset`."""
        return range(offset, self.stream_len - self.seq_len + 1, self.seq_len)

    def window(self, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets at `start`, each of shape (B, T), as int64."""
        end = start + self.seq_len
        return self.x[:, start:end].long(), self.y[:, start:end].long()
