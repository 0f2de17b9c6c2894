"""`Decoding`: sampled continuations of many prompts of one model, stepped together.

Each sequence joins with its prompt (read first, in pieces: `start_pieces`) and its own
`SampleConfig` and random generator; each `step` gives every active sequence one
character: its next character is drawn from its own logits row, then one batched model
step feeds all of them. A sequence leaves when it has its `length` characters, or when
it is dropped; sequences may join and leave between any two steps (continuous
batching). `Predictor.sample` is a `Decoding` of one sequence, so a lone sequence here
gives exactly the library's text for the same seed; in company, its logits come from a
batched product and agree with the lone ones to float32 rounding (the tests check 1e-5),
so a seeded text can differ only where a draw falls within that rounding of a boundary.

Not thread-safe: one thread at a time calls `join`, `step` and `drop` (the service's
compute thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from charlm.inference.reader import Reader
from charlm.inference.sampling import SampleConfig, choose
from charlm.model import State
from charlm.slices import Sliced, finish

__all__ = ["Decoding", "Sequence", "Start", "start_pieces"]


@dataclass(eq=False)
class Sequence:
    """One continuation being made; `Decoding.join` returns it."""

    config: SampleConfig
    rng: torch.Generator = field(repr=False)
    remaining: int
    first: int | None = None
    """A character already chosen (an empty prompt's uniform draw), yielded next."""
    done: bool = False


class Decoding:
    """Active sequences of one `Predictor` (any `Reader`), each advanced one character
    per `step`."""

    def __init__(self, predictor: Reader) -> None:
        self.predictor = predictor
        self.sequences: list[Sequence] = []
        self._logits = torch.empty(0)  # (B, V): each active sequence's next distribution
        self._step: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._session_state: Callable[[], State] | None = None

    def __len__(self) -> int:
        return len(self.sequences)

    def join(self, prompt: str, config: SampleConfig) -> Sequence:
        """Check `prompt`, read it, and add its continuation to the batch.

        An empty prompt starts from a character drawn uniformly from the vocabulary with
        the sequence's generator; that character is the first one `step` gives it.
        """
        job = start_pieces(self.predictor, prompt, config)
        with torch.inference_mode():
            return self.add(finish(job))

    def add(self, start: Start) -> Sequence:
        """Add a sequence whose prompt is read (`start_pieces`) to the batch."""
        seq = start.sequence
        if seq.done:
            return seq
        assert start.logits is not None and start.state is not None
        row, state = start.logits.float().reshape(1, -1), start.state
        if self.sequences:  # after the sequences already here
            assert self._session_state is not None
            h, c = self._session_state()
            state = (torch.cat([h, state[0]], 1), torch.cat([c, state[1]], 1))
            row = torch.cat([self._logits, row])
        self._rebuild([*self.sequences, seq], row, state)
        return seq

    def step(self) -> list[tuple[Sequence, str]]:
        """One character for every active sequence, in order; finished ones leave."""
        if not self.sequences:
            return []
        chars = self.predictor.vocab.chars
        out: list[tuple[Sequence, str]] = []
        ids: list[int] = []
        with torch.inference_mode():
            for row, seq in enumerate(self.sequences):
                if seq.first is not None:
                    choice, seq.first = seq.first, None
                else:
                    choice = choose(self._logits[row], seq.config, seq.rng)
                ids.append(choice)
                seq.remaining -= 1
                seq.done = seq.remaining == 0
                out.append((seq, chars[choice]))
            going = [i for i, s in enumerate(self.sequences) if not s.done]
            if len(going) < len(self.sequences):
                self._keep(going)
                ids = [ids[i] for i in going]
            if self.sequences:
                assert self._step is not None
                self._logits = self._step(torch.tensor(ids, device=self.predictor.device))
        return out

    def drop(self, seq: Sequence) -> None:
        """Stop making `seq` (its client has gone); the others go on."""
        seq.done = True
        if seq in self.sequences:
            with torch.inference_mode():
                self._keep([i for i, s in enumerate(self.sequences) if s is not seq])

    # -- the batch's state ----------------------------------------------------------

    def _keep(self, rows: list[int]) -> None:
        """Keep only the sequences at `rows`."""
        kept = [self.sequences[i] for i in rows]
        if not kept:
            self._rebuild([], torch.empty(0), None)
            return
        assert self._session_state is not None
        h, c = self._session_state()
        index = torch.tensor(rows, device=h.device)
        self._rebuild(kept, self._logits[index], (h[:, index], c[:, index]))

    def _rebuild(
        self, sequences: list[Sequence], logits: torch.Tensor, state: State | None
    ) -> None:
        """Make the batch `sequences`, with their logits (B, V) and state (L, B, H)."""
        self.sequences = sequences
        self._logits = logits
        if state is None:
            self._step = self._session_state = None
        else:
            self._step, self._session_state = self.predictor.batch_session(state)


@dataclass(eq=False)
class Start:
    """A sequence whose prompt has been read, ready to join a `Decoding`: the logits
    after the prompt (V,) and the state there; None for a sequence with nothing to make."""

    sequence: Sequence
    logits: torch.Tensor | None
    state: State | None


def start_pieces(predictor: Reader, prompt: str, config: SampleConfig) -> Sliced[Start]:
    """Read a sequence's prompt, in pieces (`charlm.slices`), before it joins a batch
    (`Decoding.add`); the prompt is checked now. Nothing is shared with any batch, so
    batches may step between the pieces."""
    ids = predictor.ids(prompt, "prompt") if prompt else None
    return _start(predictor, ids, config)


def _start(predictor: Reader, ids: torch.Tensor | None, config: SampleConfig) -> Sliced[Start]:
    p = predictor
    rng = config.generator()
    seq = Sequence(config, rng, config.length, done=config.length == 0)
    if seq.done:
        return Start(seq, None, None)
    if ids is not None:
        logits, state = yield from p.read_pieces(ids)
    else:
        seq.first = int(torch.randint(len(p.vocab), (1,), generator=rng))
        begin = p.model.initial_state(1, p.device)
        step, read_state = p.batch_session(begin)
        logits = step(torch.tensor([seq.first], device=p.device))[0]
        state = read_state()
    return Start(seq, logits, state)
