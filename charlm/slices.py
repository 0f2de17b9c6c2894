"""Long computations in small pieces, so that one thread can interleave many of them.

A sliced computation is a generator: it does a piece of work of a few milliseconds,
yields, does the next piece, and so on; the value it returns is its result. Between two
pieces its driver may run other work (the service's compute thread runs a waiting
/predict there), or stop it for good with `close()` (the client has gone): nothing
then runs past the piece in progress. The driver runs the pieces under
`torch.inference_mode()`: the library's plain calls around the whole run, the
service's compute thread around each piece (a mode entered inside a generator would
stay on while other work runs between its pieces).

What a piece is: `PIECE` characters of one text read by the model, `BATCH_PIECE`
character reads of a batch of texts read together (`steps_per_piece`: a batch of B
texts is read that many time steps at a time), one batched step of continuations, or
the result objects of those positions. For the models charlm trains (up to a few
hundred units) each takes a few milliseconds on a CPU core; a batched read costs about
a quarter as much per character as a lone text's, hence the larger batch pieces. The
sizes are a trade: a waiting request waits about half a piece, and every piece pays a
fixed cost per call into the model (`python bench/serve.py --largest` measures both
sides). Some pieces yield a value (the scored steps made so far, for a caller that turns
them into its answer as they come); most yield None.

The library's plain calls run their sliced form to the end with `finish`, or with
`gather` where the pieces carry values (`collect` turns those into pieces that
carry nothing, inside a larger computation).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeAlias, TypeVar

import torch

__all__ = [
    "BATCH_PIECE",
    "PIECE",
    "Sliced",
    "collect",
    "finish",
    "gather",
    "run_piece",
    "steps_per_piece",
]

T = TypeVar("T")
Y = TypeVar("Y")

PIECE = 32
"""Characters of one text the model reads per piece of work."""
BATCH_PIECE = 256
"""Character reads (texts times time steps) per piece when texts are read together,
where each costs about a quarter of a lone text's."""

Sliced: TypeAlias = Generator[None, None, T]
"""A computation whose pieces yield nothing; it returns a T."""


def steps_per_piece(batch: int) -> int:
    """Time steps per piece when `batch` sequences are read together (at least 1)."""
    return max(1, BATCH_PIECE // max(1, batch))


def run_piece(job: Generator[Any, None, T]) -> tuple[bool, T | None]:
    """Run the next piece of `job` under inference mode (what a driver that runs other
    work between pieces does): (False, None) while it has more, (True, its result) once
    it has returned. An error in the piece is raised."""
    try:
        with torch.inference_mode():
            next(job)
    except StopIteration as done:
        return True, done.value
    return False, None


def finish(job: Generator[Any, None, T]) -> T:
    """Run a sliced computation to its end; its result."""
    while True:
        try:
            next(job)
        except StopIteration as done:
            result: T = done.value
            return result


def collect(job: Generator[list[Y], None, T]) -> Generator[None, None, tuple[list[Y], T]]:
    """A computation whose pieces yield lists, as one whose pieces yield nothing: it
    returns the lists joined, and the computation's result."""
    items: list[Y] = []
    while True:
        try:
            items.extend(next(job))
        except StopIteration as done:
            result: T = done.value
            return items, result
        yield


def gather(job: Generator[list[Y], None, T]) -> tuple[list[Y], T]:
    """Run a computation whose pieces yield lists to its end: the lists joined, and its
    result."""
    return finish(collect(job))
