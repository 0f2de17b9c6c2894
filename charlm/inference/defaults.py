"""What someone asking a model gets when they say nothing: `PredictConfig` and `ScoreConfig`.

The command line (`charlm predict`, `charlm score`) and the HTTP service (`/predict`,
`/score`, `/report`) take their defaults and help texts from these two, so that a default
is stated once for both doors. The library's own calls (`Predictor.predict`,
`Predictor.score`) keep defaults of their own that suit a program: `predict` lists every
character and no runners-up unless asked.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from charlm._config import check_int, help_of, setting

__all__ = ["PredictConfig", "ScoreConfig", "default_and_help"]


@dataclass(frozen=True)
class PredictConfig:
    """What `charlm predict` and `/predict` answer by default."""

    top_k: int = setting(5, "how many next characters to list; 0 lists all")
    continuation_length: int = setting(0, "characters of greedy continuation")
    alternatives: int = setting(3, "runner-up characters per continued step")

    def __post_init__(self) -> None:
        for f in fields(self):
            check_int(f.name, getattr(self, f.name), 0)


@dataclass(frozen=True)
class ScoreConfig:
    """What `charlm score`, `/score` and `/report` answer by default."""

    alternatives: int = setting(3, "runner-up characters per step")

    def __post_init__(self) -> None:
        check_int("alternatives", self.alternatives, 0)


def default_and_help(cls: type, name: str) -> tuple[Any, str]:
    """The default and the help text of the field `name` of the config class `cls`."""
    for f in fields(cls):
        if f.name == name:
            return f.default, help_of(f)
    raise KeyError(f"{cls.__name__} has no field {name!r}")
