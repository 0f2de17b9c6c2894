"""`Predictor`: a loaded model answering questions about text.

Next-character distributions with greedy continuations (one text or a batch of them),
per-step confidence (`score`), sampling and evaluation. Every method checks its inputs
when it is called, before the model runs, and raises the one error for each bad value
(a sampling iterator too: `sample` checks before it returns). Each text is read in one
forward pass (in chunks, so its length is bounded only by memory for the answer), and
continuations then step one character at a time. Each call keeps its own recurrent state
and random generator, so concurrent calls on one `Predictor` do not interfere.

A `Predictor` holds the model (its weights, once) and a `ModelCard` (name, configs,
vocabulary, parameter count, training summary); it keeps nothing else of the
checkpoint. Generation steps through a `Stepper` (prepacked weights), built on first use.
Probabilities are softmax of the logits in float32 (scores: `charlm.inference.scoring`);
characters outside the vocabulary are refused, skipped or replaced (`...unknown`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from charlm import checkpoint
from charlm._config import check_choice, check_int
from charlm.errors import ConfigError
from charlm.evaluation import evaluate_streams
from charlm.inference.activations import activations
from charlm.inference.decoding import Decoding
from charlm.inference.greedy import greedy_steps
from charlm.inference.prefixes import PrefixStates
from charlm.inference.results import (
    ActivationResult,
    CharProb,
    EvalResult,
    Generation,
    ModelCard,
    Prediction,
    ScoreResult,
    ScoreStep,
    TrainingSummary,
    UnknownChar,
)
from charlm.inference.sampling import SampleConfig
from charlm.inference.scoring import score_pieces, top_chars
from charlm.inference.stepper import STEP_WEIGHTS, Stepper
from charlm.inference.unknown import Reading, read_text, remap_score
from charlm.model import CharRNN, State
from charlm.runtime import (
    pick_device,
    release_freed_memory,
    require_bf16_steps,
    require_int8_steps,
)
from charlm.slices import PIECE, Sliced, finish, gather
from charlm.vocab import Vocabulary

__all__ = ["PredictQuery", "Predictor"]

_CHUNK = 4096
_BATCH_TEXT_MAX = 1024  # longer texts are read on their own (and in chunks)
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class PredictQuery:
    """One checked `predict` call, from `Predictor.query`, for `predict_batch`."""

    text: str
    ids: torch.Tensor
    top_k: int
    continuation_length: int
    alternatives: int
    unknown: tuple[UnknownChar, ...] = ()


class Predictor:
    """A loaded model and its vocabulary, ready to answer questions about text."""

    def __init__(
        self,
        model: CharRNN,
        vocab: Vocabulary,
        *,
        card: ModelCard | None = None,
        step_weights: str = "fp32",
    ) -> None:
        """`step_weights`: how generation's `Stepper` keeps the recurrent weights:
        "fp32", or the faster "bf16" or "int8", whose continuations' probabilities stay
        within 2e-2 and 5e-2 of float32 ones (tested)."""
        self.model = model.eval()
        self.vocab = vocab
        self.device = next(model.parameters()).device
        self.card = card or _card("model", model, vocab, {})
        check_choice("step_weights", step_weights, STEP_WEIGHTS)
        if step_weights != "fp32" and model.config.cell != "lstm":
            raise ConfigError(
                f"{step_weights} steps are the LSTM stepper's; this model is a "
                f"{model.config.cell.upper()}, which steps in float32"
            )
        if step_weights == "bf16":
            require_bf16_steps(self.device)
        if step_weights == "int8":
            require_int8_steps(self.device)
        self.step_weights = step_weights
        self._stepper: Stepper | None = None
        self._stepper_lock = threading.Lock()
        self._prefixes = PrefixStates()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        *,
        name: str | None = None,
        step_weights: str = "fp32",
    ) -> Predictor:
        """Load the checkpoint in directory `path`; `name` (default: the directory's
        name) is what answers call the model and how errors name it."""
        name = name or Path(path).resolve().name
        ckpt = checkpoint.load(path, label=name)
        model = ckpt.build_model(pick_device(device))
        card = _card(name, model, ckpt.vocab, ckpt.summary)
        release_freed_memory()  # the file's temporaries
        return cls(model, ckpt.vocab, card=card, step_weights=step_weights)

    @property
    def name(self) -> str:
        return self.card.name

    # -- checks -------------------------------------------------------------------

    def ids(self, text: str, what: str, *, min_chars: int = 1) -> torch.Tensor:
        """`text`'s ids (N,) on the model's device, refused if it has a character outside
        the vocabulary or fewer than `min_chars` (`what` names the text in the error)."""
        return self._fed(read_text(self.vocab, text, what=what, min_chars=min_chars))

    def _fed(self, reading: Reading) -> torch.Tensor:  # what the model reads, as ids
        return self.vocab.encode(reading.read).to(self.device)

    def query(
        self,
        text: str,
        top_k: int = 0,
        continuation_length: int = 0,
        alternatives: int = 0,
        *,
        on_unknown: str = "refuse",
        replacement: str | None = None,
    ) -> PredictQuery:
        """Check one `predict` call's arguments (the only place they are checked)."""
        check_int("top_k", top_k, 0)
        check_int("continuation_length", continuation_length, 0)
        check_int("alternatives", alternatives, 0)
        reading = read_text(self.vocab, text, on_unknown, replacement)
        ids = self._fed(reading)
        return PredictQuery(
            reading.read, ids, top_k, continuation_length, alternatives, reading.unknown
        )

    # -- reading, for `decoding` and `activations` too (`charlm.inference.reader`) ----

    def read_pieces(self, ids: torch.Tensor) -> Sliced[tuple[torch.Tensor, State]]:
        """Run the model over `ids` (N,) from a zero state, `PIECE` characters at a time
        (`charlm.slices`): the logits after the last one (V,) and the state there."""
        state: State | None = None
        logits = torch.empty(0)
        for start in range(0, ids.numel(), PIECE):
            out, state = self.model(ids[start : start + PIECE].unsqueeze(0), state)
            logits = out[0, -1]
            yield
        assert state is not None
        return logits, state

    def _stepper_for_cpu(self) -> Stepper | None:
        """The fast stepper, for an LSTM on the CPU; None where the model's own forward
        pass steps instead (GRU and RNN cells, other devices)."""
        if self.device.type != "cpu" or self.model.config.cell != "lstm":
            return None
        with self._stepper_lock:
            if self._stepper is None:
                self._stepper = Stepper(self.model, weights=self.step_weights)
                release_freed_memory()
            return self._stepper

    def batch_session(
        self, state: State
    ) -> tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[], State]]:
        """Sequences continuing from `state` ((h, c), each (L, B, H)): a function that
        feeds one character to each, ids (B,), and returns the next logits (B, V), and
        one that returns their current state. Call both under inference mode."""
        stepper = self._stepper_for_cpu()
        if stepper is not None:
            session = stepper.session(state)
            return session.step_batch, session.state
        current = state

        def step(char_ids: torch.Tensor) -> torch.Tensor:
            nonlocal current
            out, current = self.model(char_ids.unsqueeze(1), current)
            logits: torch.Tensor = out[:, -1]
            return logits

        return step, lambda: current

    def _top(self, probs: torch.Tensor, k: int) -> list[CharProb]:
        return top_chars(self.vocab.chars, probs, k)

    # -- questions ----------------------------------------------------------------

    def predict(
        self,
        text: str,
        top_k: int = 0,
        continuation_length: int = 0,
        alternatives: int = 0,
        *,
        on_unknown: str = "refuse",
        replacement: str | None = None,
    ) -> Prediction:
        """The distribution of the character after `text` (`top_k` 0: all), and the
        `continuation_length` most likely next characters, chosen one at a time, each
        with its `alternatives` runners-up. `on_unknown`: what to do with characters
        outside the vocabulary (`charlm.inference.unknown`)."""
        n = continuation_length
        query = self.query(
            text, top_k, n, alternatives, on_unknown=on_unknown, replacement=replacement
        )
        return self.predict_batch([query])[0]

    def predict_batch(self, queries: Sequence[PredictQuery]) -> list[Prediction]:
        """`predict` for many checked queries at once, in order.

        The texts are read together (`CharRNN.read_batch`) and the continuations
        advance together, one batched step per character, so B queries cost far less
        than B calls. Answers equal `predict`'s up to float32 rounding (the tests check
        1e-5 and identical characters). Texts over 1,024 characters are read on their
        own.
        """
        with torch.inference_mode():
            return finish(self.predict_pieces(queries))

    def predict_pieces(self, queries: Sequence[PredictQuery]) -> Sliced[list[Prediction]]:
        """`predict_batch` in pieces (`charlm.slices`)."""
        together = [q for q in queries if len(q.text) <= _BATCH_TEXT_MAX]
        if len(together) < 2:
            together = []
        answers: dict[int, Prediction] = {}
        if together:
            logits, state = yield from self.model.read_batch_pieces([q.ids for q in together])
            found = yield from self._answer(together, logits, state)
            answers.update(zip(map(id, together), found, strict=True))
        for q in queries:
            if id(q) not in answers:
                logits, (h, c) = yield from self.read_pieces(q.ids)
                found = yield from self._answer([q], logits[None], (h, c))
                answers[id(q)] = found[0]
        return [answers[id(q)] for q in queries]

    def _answer(
        self, queries: list[PredictQuery], logits: torch.Tensor, state: State
    ) -> Sliced[list[Prediction]]:
        """Distributions and continuations of B queries from their logits (B, V) and
        state; the continuations step as one batch, a piece per step."""
        probs = torch.softmax(logits.float(), -1)
        lengths = [q.continuation_length for q in queries]
        step = self.batch_session(state)[0] if max(lengths) else None
        alts = [q.alternatives for q in queries]
        steps = yield from greedy_steps(self.vocab.chars, probs, step, lengths, alts)
        return [
            Prediction(
                model=self.name,
                next=self._top(probs[b], q.top_k),
                continuation="".join(s.char for s in steps[b]),
                steps=steps[b],
                unknown=list(q.unknown),
            )
            for b, q in enumerate(queries)
        ]

    def score(
        self,
        text: str,
        alternatives: int = 3,
        *,
        start: int = 1,
        next_top: int | None = None,
        on_unknown: str = "refuse",
        replacement: str | None = None,
    ) -> ScoreResult:
        """Per-step confidence: how the model saw each character of `text` after the first.

        Steps are listed from position `start` on (an editor that changed a text from
        there on asks only for those: the steps before cannot have changed); the summary
        (bits per character, the least likely character) always covers the whole text.
        Reading resumes from the model's state part-way through a recent text that
        shares a prefix with this one (`charlm.inference.prefixes`). With `next_top`,
        the answer also lists the likeliest characters to follow the text, as many as
        that (0: all), as `predict` would. `on_unknown`: what to do with characters
        outside the vocabulary (`charlm.inference.unknown`); positions are always those
        of the text as given.
        """
        job = self.score_pieces(
            text,
            alternatives,
            start=start,
            next_top=next_top,
            on_unknown=on_unknown,
            replacement=replacement,
        )
        with torch.inference_mode():
            steps, result = gather(job)
        return result.model_copy(update={"steps": steps})

    def score_pieces(
        self,
        text: str,
        alternatives: int = 3,
        *,
        start: int = 1,
        next_top: int | None = None,
        on_unknown: str = "refuse",
        replacement: str | None = None,
    ) -> Generator[list[ScoreStep], None, ScoreResult]:
        """`score` in pieces (`charlm.slices`), its arguments checked now:
        each piece yields the steps it read, and the result has every field but `steps`
        (a server turns the steps into its answer as they come)."""
        check_int("alternatives", alternatives, 0)
        check_int("start", start, 1)
        if next_top is not None:
            check_int("next_top", next_top, 0)
        reading = read_text(self.vocab, text, on_unknown, replacement, min_chars=2)
        pieces = score_pieces(
            self.model,
            self.vocab.chars,
            self._fed(reading),
            name=self.name,
            text=reading.read,
            prefixes=self._prefixes,
            alternatives=alternatives,
            start=max(1, reading.fed_index(start)),
            next_top=next_top,
        )
        return remap_score(reading, pieces) if reading.unknown else pieces

    def activations(
        self,
        text: str,
        *,
        layer: int = -1,
        kind: str = "cell",
        cells: Sequence[int] = (),
        top: int = 5,
        marked: Sequence[Sequence[int]] = (),
    ) -> ActivationResult:
        """Inside the model: the activation of units `cells` of `layer` after each
        character of `text`, and the units most correlated with simple features of the
        text and with the spans `marked` (`charlm.inference.activations`)."""
        return activations(self, text, layer=layer, kind=kind, cells=cells, top=top, marked=marked)

    def evaluate(self, text: str, *, what: str = "text") -> EvalResult:
        """Mean loss over `text` read as one stream; the first character is context only."""
        ids = self.ids(text, what, min_chars=2)
        loss, n = evaluate_streams(self.model, ids.unsqueeze(0), chunk=_CHUNK)
        return EvalResult(model=self.name, loss=loss, bits_per_char=loss / _LN2, chars=n)

    def sample(self, prompt: str, config: SampleConfig) -> Iterator[str]:
        """`config.length` sampled characters after `prompt`, one at a time.

        The prompt is checked and read now; the characters are made as the iterator is
        read. An empty prompt starts from a character drawn uniformly from the
        vocabulary (with the same seed), which is the first character yielded.
        Inference mode is entered around each computation, never across a `yield`: a
        consumer may resume the iterator from another thread. Many continuations made
        together: `Decoding`.
        """
        decoding = Decoding(self)
        decoding.join(prompt, config)
        return _drain(decoding)

    def generate(self, prompt: str, config: SampleConfig) -> Generation:
        """`config.length` sampled characters after `prompt` (the prompt not included)."""
        text = "".join(self.sample(prompt, config))
        return Generation(model=self.name, prompt=prompt, text=text)


def _drain(decoding: Decoding) -> Iterator[str]:
    while len(decoding):
        for _, char in decoding.step():
            yield char


def _card(name: str, model: CharRNN, vocab: Vocabulary, summary: dict[str, object]) -> ModelCard:
    return ModelCard(
        name=name,
        vocab_size=len(vocab),
        vocab=list(vocab.chars),
        parameters=model.num_parameters(),
        architecture=model.config.to_dict(),
        training=TrainingSummary.from_summary(dict(summary)),
    )
