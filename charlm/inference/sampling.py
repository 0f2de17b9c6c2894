"""How to sample a character: `SampleConfig`, and `choose`, which never meets a NaN.

`choose` works in float64 on logits shifted so that the largest is 0 before dividing by
the temperature: every scaled logit is then <= 0 and finite or -inf, the likeliest
character's weight is exactly 1, and no temperature however small (1e-45 included) or
top-p however small (1e-46 included) can turn the distribution into NaN or all zeros.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from charlm._config import MAX_SEED, check_int, check_number, from_dict, setting

__all__ = ["MAX_SEED", "SampleConfig", "choose"]


@dataclass(frozen=True)
class SampleConfig:
    """How to sample a continuation. temperature 0 means greedy; seed None means random."""

    length: int = setting(200, "characters to generate")
    temperature: float = setting(1.0, "softmax temperature; 0 is greedy")
    top_k: int = setting(0, "sample only from the k likeliest characters; 0 means all")
    top_p: float = setting(1.0, "sample from the likeliest characters that hold this much mass")
    seed: int | None = setting(None, "the same seed gives the same text; unset is random")

    def __post_init__(self) -> None:
        check_int("length", self.length, 0)
        check_number("temperature", self.temperature, minimum=0.0)
        check_int("top_k", self.top_k, 0)
        check_number("top_p", self.top_p, above=0.0, maximum=1.0)
        if self.seed is not None:
            check_int("seed", self.seed, 0, MAX_SEED)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> SampleConfig:
        return from_dict(cls, data, "sample config")

    def generator(self) -> torch.Generator:
        """A random generator seeded from `seed` (from the OS when it is None)."""
        rng = torch.Generator(device="cpu")
        if self.seed is None:
            rng.seed()
        else:
            rng.manual_seed(self.seed)
        return rng


def choose(logits: torch.Tensor, config: SampleConfig, rng: torch.Generator) -> int:
    """The id of the next character, drawn from logits (V,) as `config` says."""
    logits = logits.detach().double().cpu()
    if config.temperature == 0:
        return int(torch.argmax(logits))
    scaled = (logits - logits.max()) / config.temperature  # <= 0; the top one is 0
    if 0 < config.top_k < scaled.numel():
        kth = torch.topk(scaled, config.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, -torch.inf)
    weights = torch.exp(scaled)  # the top one is exactly 1
    if config.top_p < 1.0:
        probs = weights / weights.sum()
        sorted_p, order = torch.sort(probs, descending=True)
        before = torch.cumsum(sorted_p, 0) - sorted_p  # mass of strictly likelier chars
        sorted_p[before >= config.top_p] = 0.0  # the likeliest is never dropped
        weights = torch.zeros_like(probs).scatter(0, order, sorted_p)
    return int(torch.multinomial(weights, 1, generator=rng))
