"""`Reader`: the part of a loaded model's API that the modules reading text with it use.

`Predictor` is a `Reader`. `decoding` (sampled continuations, stepped together) and
`activations` (what the units do as a text is read) take a `Reader` and call only these
public members, so that they need not import the predictor, which imports them: the
checked ids of a text, the text read in pieces, and a batch of sequences stepped one
character at a time from a state. Nothing here runs; it is a type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from charlm.model import CharRNN, State
from charlm.slices import Sliced
from charlm.vocab import Vocabulary

__all__ = ["Reader"]


class Reader(Protocol):
    """A loaded model and its vocabulary, read through `ids`, `read_pieces` and
    `batch_session` (see `Predictor` for what each does)."""

    @property
    def name(self) -> str: ...

    @property
    def model(self) -> CharRNN: ...

    @property
    def vocab(self) -> Vocabulary: ...

    @property
    def device(self) -> torch.device: ...

    def ids(self, text: str, what: str, *, min_chars: int = 1) -> torch.Tensor:
        """`text`'s ids on the model's device, checked (`what` names it in errors)."""
        ...

    def read_pieces(self, ids: torch.Tensor) -> Sliced[tuple[torch.Tensor, State]]:
        """Read `ids` (N,) from a zero state in pieces: the logits after the last (V,)
        and the state there."""
        ...

    def batch_session(
        self, state: State
    ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[], State]]:
        """Step sequences continuing from `state`: a function that feeds each one
        character, ids (B,), and returns the next logits (B, V), and one that returns
        their current state."""
        ...
