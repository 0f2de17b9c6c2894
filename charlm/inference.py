"""Using a trained model: next-character distributions, greedy continuations,
per-step confidence, sampling and evaluation.

`Predictor.from_checkpoint` rebuilds the vocabulary and model from the checkpoint
alone. Every call checks its text against the vocabulary before the model runs, reads
the text in one forward pass (in chunks, so length is bounded only by memory for the
answer), and then steps one character at a time. Each call keeps its own recurrent
state and random generator, so concurrent calls on one `Predictor` do not interfere.

Probabilities are softmax of the logits, computed in float32 from log-softmax; entropy
is in bits. A position's rank is 1 when the model's top choice was the actual character.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from charlm import checkpoint
from charlm._dictconfig import from_dict
from charlm.errors import ConfigError, InputError
from charlm.model import CharLSTM, State
from charlm.stepper import Stepper
from charlm.train import evaluate_streams
from charlm.vocab import Vocabulary

__all__ = [
    "CharProb",
    "Continuation",
    "ContinuationStep",
    "EvalResult",
    "PredictQuery",
    "Prediction",
    "Predictor",
    "SampleConfig",
    "ScoreResult",
    "ScoreStep",
]

_CHUNK = 4096
_BATCH_TEXT_MAX = 1024  # longer texts are read on their own (and in chunks)
_LN2 = math.log(2.0)


@dataclass(frozen=True)
class SampleConfig:
    """How to sample a continuation. temperature 0 means greedy; seed None means random."""

    length: int = 200
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or self.length < 0:
            raise ConfigError(f"length must be an integer >= 0, got {self.length!r}")
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ConfigError(
                f"temperature must be >= 0 (0 means greedy), got {self.temperature!r}"
            )
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top_k must be an integer >= 0 (0 means all), got {self.top_k!r}")
        if not (0.0 < self.top_p <= 1.0):
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> SampleConfig:
        return from_dict(cls, data, "sample config")


@dataclass(frozen=True)
class CharProb:
    char: str
    prob: float


@dataclass(frozen=True)
class ContinuationStep:
    """One greedily chosen character, its probability and the runners-up."""

    char: str
    prob: float
    top: list[CharProb]


@dataclass(frozen=True)
class Continuation:
    text: str
    steps: list[ContinuationStep]


@dataclass(frozen=True)
class Prediction:
    """The next-character distribution after a text and its greedy continuation."""

    next: list[CharProb]
    continuation: Continuation


@dataclass(frozen=True)
class PredictQuery:
    """One `predict` call's arguments, for `Predictor.predict_batch`."""

    text: str
    top_k: int = 0
    length: int = 0
    alternatives: int = 0

    def __post_init__(self) -> None:
        if min(self.top_k, self.length, self.alternatives) < 0:
            raise ConfigError("top_k, length and alternatives must be >= 0")


@dataclass(frozen=True)
class ScoreStep:
    """How the model saw the character at `position`, given everything before it."""

    position: int
    char: str
    prob: float
    rank: int
    top_char: str
    top_prob: float
    entropy_bits: float
    top: list[CharProb]


@dataclass(frozen=True)
class ScoreResult:
    steps: list[ScoreStep]
    bits_per_char: float
    min_prob: float
    min_position: int


@dataclass(frozen=True)
class EvalResult:
    loss: float  # nats per predicted character
    bits_per_char: float
    chars: int  # characters predicted (the first one is context only)


class Predictor:
    """A loaded model and its vocabulary, ready to answer questions about text."""

    def __init__(
        self,
        model: CharLSTM,
        vocab: Vocabulary,
        *,
        info: checkpoint.Checkpoint | None = None,
        bf16_steps: bool = False,
    ) -> None:
        """`bf16_steps`: generate with bfloat16 weights (`Stepper`); faster, and
        continuations' probabilities stay within 2e-2 of float32 ones (tested)."""
        self.model = model.eval()
        self.vocab = vocab
        self.info = info
        self.device = next(model.parameters()).device
        if bf16_steps and self.device.type != "cpu":
            raise ConfigError("bf16 stepping is for the CPU")
        self.stepper = Stepper(model, bf16=bf16_steps) if self.device.type == "cpu" else None

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", *, bf16_steps: bool = False
    ) -> Predictor:
        ckpt = checkpoint.load(path)
        return cls(ckpt.build_model(device), ckpt.vocab, info=ckpt, bf16_steps=bf16_steps)

    # -- building blocks --------------------------------------------------------

    def check_text(self, text: str, what: str = "text") -> None:
        """Raise `InputError` unless `text` is non-empty and within the vocabulary."""
        if not text:
            raise InputError(f"{what} is empty; give at least one character")
        self.vocab.check(text, what=what)

    def _ids(self, text: str, what: str) -> torch.Tensor:
        if not text:
            raise InputError(f"{what} is empty; give at least one character")
        return self.vocab.encode(text, what=what).to(self.device)

    def _read(self, ids: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Run the model over `ids` (N,); logits after the last one (V,) and the state."""
        state: State | None = None
        logits = torch.empty(0)
        for start in range(0, ids.numel(), _CHUNK):
            out, state = self.model(ids[start : start + _CHUNK].unsqueeze(0), state)
            logits = out[0, -1]
        assert state is not None
        return logits, state

    def _stepping(self, state: State) -> Callable[[int], torch.Tensor]:
        """A function that feeds one character and returns the next logits (V,),
        continuing from `state`; call it under inference mode."""
        if self.stepper is not None:
            return self.stepper.session(state).step
        current = state

        def step(char_id: int) -> torch.Tensor:
            nonlocal current
            x = torch.tensor([[char_id]], dtype=torch.int64, device=self.device)
            out, current = self.model(x, current)
            logits: torch.Tensor = out[0, -1]
            return logits

        return step

    def _stepping_batch(self, state: State) -> Callable[[torch.Tensor], torch.Tensor]:
        """`_stepping` for B sequences: ids (B,) in, logits (B, V) out."""
        if self.stepper is not None:
            return self.stepper.session(state).step_batch
        current = state

        def step(char_ids: torch.Tensor) -> torch.Tensor:
            nonlocal current
            out, current = self.model(char_ids.unsqueeze(1), current)
            logits: torch.Tensor = out[:, -1]
            return logits

        return step

    def _top(self, probs: torch.Tensor, k: int) -> list[CharProb]:
        k = min(k, probs.numel()) if k > 0 else probs.numel()
        values, indices = torch.topk(probs, k)
        chars = self.vocab.chars
        return [
            CharProb(chars[i], float(v))
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        ]

    # -- questions ----------------------------------------------------------------

    def next_distribution(self, text: str, top_k: int = 0) -> list[CharProb]:
        """The distribution of the character after `text`, most likely first (top_k 0: all)."""
        with torch.inference_mode():
            logits, _ = self._read(self._ids(text, "text"))
            return self._top(torch.softmax(logits.float(), -1), top_k)

    def predict(
        self, text: str, top_k: int = 0, length: int = 0, alternatives: int = 0
    ) -> Prediction:
        """`next_distribution` and `continue_greedy` in one pass over `text`."""
        if length < 0 or top_k < 0 or alternatives < 0:
            raise ConfigError("top_k, length and alternatives must be >= 0")
        with torch.inference_mode():
            logits, state = self._read(self._ids(text, "text"))
            dist = self._top(torch.softmax(logits.float(), -1), top_k)
            return Prediction(dist, self._greedy(logits, state, length, alternatives))

    def predict_batch(self, queries: Sequence[PredictQuery]) -> list[Prediction]:
        """`predict` for many texts at once, in order.

        The texts are read together (`CharLSTM.read_batch`) and the continuations
        advance together, one batched step per character, so B queries cost far less
        than B calls. Answers equal `predict`'s up to float32 rounding (the tests check
        1e-5 and identical characters). Texts over 1,024 characters are read on their
        own.
        """
        answers: dict[int, Prediction] = {}
        short: list[int] = []
        for i, q in enumerate(queries):
            if len(q.text) > _BATCH_TEXT_MAX or len(queries) == 1:
                answers[i] = self.predict(q.text, q.top_k, q.length, q.alternatives)
            else:
                short.append(i)
        if short:
            batch = [queries[i] for i in short]
            for i, answer in zip(short, self._predict_together(batch), strict=True):
                answers[i] = answer
        return [answers[i] for i in range(len(queries))]

    def _predict_together(self, queries: list[PredictQuery]) -> list[Prediction]:
        ids = [self._ids(q.text, "text") for q in queries]
        with torch.inference_mode():
            logits, (h, c) = self.model.read_batch(ids)
            probs = torch.softmax(logits.float(), -1)
            nexts = [self._top(probs[b], q.top_k) for b, q in enumerate(queries)]
            conts = [Continuation("", []) for _ in queries]
            going = [b for b, q in enumerate(queries) if q.length > 0]
            if going:
                rows = torch.tensor(going, device=self.device)
                done = self._greedy_together(
                    logits[rows],
                    (h[:, rows], c[:, rows]),
                    [queries[b].length for b in going],
                    [queries[b].alternatives for b in going],
                )
                for b, cont in zip(going, done, strict=True):
                    conts[b] = cont
        return [Prediction(n, cont) for n, cont in zip(nexts, conts, strict=True)]

    def _greedy_together(
        self, logits: torch.Tensor, state: State, lengths: list[int], alternatives: list[int]
    ) -> list[Continuation]:
        """`_greedy` for B sequences stepped as one batch; logits (B, V)."""
        step = self._stepping_batch(state)
        chars = self.vocab.chars
        k = min(max(alternatives), logits.shape[1])
        steps: list[list[ContinuationStep]] = [[] for _ in lengths]
        n = max(lengths)
        for i in range(n):
            probs = torch.softmax(logits.float(), -1)
            best_p, best = probs.max(1)
            alt_v, alt_i = torch.topk(probs, k, dim=1)  # k = 0 gives empty rows
            rows = zip(best.tolist(), best_p.tolist(), alt_v.tolist(), alt_i.tolist(), strict=True)
            for b, (c, p, av, ai) in enumerate(rows):
                if i < lengths[b]:
                    top = [CharProb(chars[j], v) for v, j in zip(av, ai, strict=True)]
                    steps[b].append(ContinuationStep(chars[c], p, top[: alternatives[b]]))
            if i + 1 < n:
                logits = step(best)
        return [Continuation("".join(st.char for st in s), s) for s in steps]

    def continue_greedy(self, text: str, length: int, alternatives: int = 0) -> Continuation:
        """The `length` most likely next characters, one at a time, after `text`."""
        if length < 0:
            raise ConfigError(f"continuation length must be >= 0, got {length}")
        with torch.inference_mode():
            logits, state = self._read(self._ids(text, "text"))
            return self._greedy(logits, state, length, alternatives)

    def _greedy(
        self, logits: torch.Tensor, state: State, length: int, alternatives: int
    ) -> Continuation:
        steps: list[ContinuationStep] = []
        step = self._stepping(state)
        for i in range(length):
            probs = torch.softmax(logits.float(), -1)
            best = int(torch.argmax(probs))
            top = self._top(probs, alternatives) if alternatives > 0 else []
            steps.append(ContinuationStep(self.vocab.chars[best], float(probs[best]), top))
            if i + 1 < length:
                logits = step(best)
        return Continuation("".join(s.char for s in steps), steps)

    def score(self, text: str, alternatives: int = 3) -> ScoreResult:
        """Per-step confidence: how the model saw each character of `text` after the first."""
        ids = self._ids(text, "text")
        if ids.numel() < 2:
            raise InputError("text needs at least 2 characters to score (the first is context)")
        chars = self.vocab.chars
        steps: list[ScoreStep] = []
        total_nats = 0.0
        state: State | None = None
        x_all, y_all = ids[:-1], ids[1:]
        with torch.inference_mode():
            for start in range(0, x_all.numel(), _CHUNK):
                x = x_all[start : start + _CHUNK].unsqueeze(0)
                y = y_all[start : start + _CHUNK]  # (t,)
                out, state = self.model(x, state)
                logp = F.log_softmax(out[0].float(), -1)  # (t, V)
                probs = logp.exp()
                actual_logp = logp.gather(1, y.unsqueeze(1)).squeeze(1)  # (t,)
                actual_p = probs.gather(1, y.unsqueeze(1))  # (t, 1)
                ranks = (probs > actual_p).sum(1) + 1  # (t,)
                top_p, top_i = probs.max(1)
                entropy = -(probs * logp).nan_to_num().sum(1) / _LN2  # (t,)
                k = min(max(alternatives, 1), probs.shape[1])
                alt_v, alt_i = torch.topk(probs, k, dim=1)
                total_nats -= float(actual_logp.sum())
                rows = zip(
                    y.tolist(),
                    actual_p.squeeze(1).tolist(),
                    ranks.tolist(),
                    top_i.tolist(),
                    top_p.tolist(),
                    entropy.tolist(),
                    alt_v.tolist(),
                    alt_i.tolist(),
                    strict=True,
                )
                for j, (c, p, r, ti, tp, h, av, ai) in enumerate(rows):
                    top = [CharProb(chars[i], v) for v, i in zip(av, ai, strict=True)]
                    steps.append(
                        ScoreStep(
                            position=start + j + 1,
                            char=chars[c],
                            prob=p,
                            rank=r,
                            top_char=chars[ti],
                            top_prob=tp,
                            entropy_bits=max(0.0, h),
                            top=top[:alternatives] if alternatives > 0 else [],
                        )
                    )
        worst = min(steps, key=lambda s: s.prob)
        return ScoreResult(
            steps=steps,
            bits_per_char=total_nats / len(steps) / _LN2,
            min_prob=worst.prob,
            min_position=worst.position,
        )

    def evaluate(self, text: str, *, what: str = "text") -> EvalResult:
        """Mean loss over `text` read as one stream; the first character is context only."""
        ids = self._ids(text, what)
        if ids.numel() < 2:
            raise InputError("text needs at least 2 characters to evaluate")
        loss, n = evaluate_streams(self.model, ids.unsqueeze(0), chunk=_CHUNK)
        return EvalResult(loss=loss, bits_per_char=loss / _LN2, chars=n)

    def sample(self, prompt: str, config: SampleConfig) -> Iterator[str]:
        """Yield `config.length` sampled characters after `prompt`, one at a time.

        An empty prompt starts from a character drawn uniformly from the vocabulary
        (with the same seed), which is the first character yielded. Inference mode is
        entered around each computation, never across a `yield`: a consumer may resume
        the generator from another thread (as the service's streaming does).
        """
        rng = torch.Generator(device="cpu")
        if config.seed is None:
            rng.seed()
        else:
            rng.manual_seed(config.seed)
        if config.length == 0:
            return
        remaining = config.length
        if prompt:
            ids = self._ids(prompt, "prompt")
            with torch.inference_mode():
                logits, state = self._read(ids)
                step = self._stepping(state)
        else:
            first = int(torch.randint(len(self.vocab), (1,), generator=rng))
            yield self.vocab.chars[first]
            remaining -= 1
            if remaining == 0:
                return
            with torch.inference_mode():
                step = self._stepping(self.model.initial_state(1, self.device))
                logits = step(first)
        for i in range(remaining):
            with torch.inference_mode():
                choice = self._choose(logits, config, rng)
            yield self.vocab.chars[choice]
            if i + 1 < remaining:
                with torch.inference_mode():
                    logits = step(choice)

    def generate(self, prompt: str, config: SampleConfig) -> str:
        """`config.length` sampled characters after `prompt` (the prompt not included)."""
        return "".join(self.sample(prompt, config))

    @staticmethod
    def _choose(logits: torch.Tensor, config: SampleConfig, rng: torch.Generator) -> int:
        logits = logits.float().cpu()
        if config.temperature == 0:
            return int(torch.argmax(logits))
        logits = logits / config.temperature
        if 0 < config.top_k < logits.numel():
            kth = torch.topk(logits, config.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, -math.inf)
        probs = torch.softmax(logits, -1)
        if config.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            before = torch.cumsum(sorted_p, 0) - sorted_p  # mass of strictly likelier chars
            sorted_p[before >= config.top_p] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        return int(torch.multinomial(probs, 1, generator=rng))
