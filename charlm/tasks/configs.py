"""The settings of each kind of task corpus: one frozen dataclass per kind.

Every field is declared with `setting(default, help)`, so `charlm corpus make KIND`
derives its flags from these classes, and is checked in `__post_init__`, so a bad value
gets the same `ConfigError` from the command line and from a program. The generators
that read them are in `charlm/tasks/corpora.py`.
"""

from __future__ import annotations

import math
import string
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Self

from charlm._config import check_int, check_number, from_dict, setting
from charlm.errors import ConfigError

__all__ = [
    "CYCLE_SYMBOLS",
    "CountingConfig",
    "CycleConfig",
    "FunctionsConfig",
    "LatchConfig",
    "TaskConfig",
]

CYCLE_SYMBOLS = string.ascii_lowercase + string.ascii_uppercase + string.digits + string.punctuation
"""The cycle's symbols, in order: letters, digits, then printable ASCII punctuation."""

_MAX_LINES = 10_000_000
_MAX_PER_CLASS = 100_000
_MAX_POINTS = 100
_MAX_VALUES = 10_000
_FORBIDDEN = "=\n\t\r"


class TaskConfig:
    """What every kind's config shares: to and from a JSON object."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_dict(cls, data: object) -> Self:
        return from_dict(cls, data, f"{cls.__name__}")


@dataclass(frozen=True)
class CycleConfig(TaskConfig):
    """A fixed cycle of K symbols repeated (no newlines); answer: the next symbol."""

    symbols: int = setting(26, f"how many symbols cycle (K, 2 to {len(CYCLE_SYMBOLS)})")
    length: int = setting(20_000, "training text length, in characters")
    heldout_per_class: int = setting(4, "held-out items per answer symbol")

    def __post_init__(self) -> None:
        check_int("symbols", self.symbols, 2, len(CYCLE_SYMBOLS))
        check_int("length", self.length, 1, 100_000_000)
        check_int("heldout_per_class", self.heldout_per_class, 1, _MAX_PER_CLASS)

    @property
    def alphabet(self) -> str:
        return CYCLE_SYMBOLS[: self.symbols]


@dataclass(frozen=True)
class CountingConfig(TaskConfig):
    """One line of values start, start+step, ..., end, repeated; answer: the next value."""

    start: float = setting(0.0, "first value")
    step: float = setting(0.05, "difference between values (at least 10^-digits)")
    end: float = setting(1.0, "last value (included when the steps land on it)")
    digits: int = setting(2, "decimals shown")
    repeats: int = setting(200, "training lines (each the whole count)")
    heldout_rounds: int = setting(1, "held-out items per position in the line")

    def __post_init__(self) -> None:
        check_int("digits", self.digits, 0, 10)
        check_number("start", self.start, minimum=-1e12, maximum=1e12)
        check_number("end", self.end, minimum=-1e12, maximum=1e12)
        check_number("step", self.step, above=0.0)
        if _decimal(self.step) < Decimal(1).scaleb(-self.digits):
            raise ConfigError(
                f"step must be at least 10^-digits ({Decimal(1).scaleb(-self.digits):f}), "
                f"or values would repeat; got {self.step:g} with digits {self.digits}"
            )
        check_int("repeats", self.repeats, 1, _MAX_LINES)
        check_int("heldout_rounds", self.heldout_rounds, 1, _MAX_PER_CLASS)
        count = self.count
        if count < 2:
            raise ConfigError(
                f"end must be at least start + step, for two values or more; got start "
                f"{self.start:g}, step {self.step:g}, end {self.end:g}"
            )
        if count > _MAX_VALUES:
            raise ConfigError(f"the line would hold {count} values; the limit is {_MAX_VALUES}")

    @property
    def count(self) -> int:
        """How many values the line holds (exact: decimal arithmetic)."""
        start, step, end = (_decimal(v) for v in (self.start, self.step, self.end))
        if end < start:
            return 0
        return int((end - start) // step) + 1


@dataclass(frozen=True)
class FunctionsConfig(TaskConfig):
    """Lines of points x,y;x,y;... of one function, then '=' and its name: line
    (y = kx + b), parabola (y = kx^2 + b) or sqrt (y = k*sqrt(x) + b)."""

    points: str = setting("1-8", "training points per line: N, or A-B drawn uniformly")
    heldout_points: str = setting("1-12", "held-out items for every point count in A-B (or N)")
    lines: int = setting(3000, "training lines")
    heldout_per_class: int = setting(20, "held-out items per function and point count")
    k_min: float = setting(0.5, "smallest k")
    k_max: float = setting(2.0, "largest k")
    b_min: float = setting(-1.0, "smallest b")
    b_max: float = setting(1.0, "largest b")
    x_min: float = setting(0.0, "smallest x (>= 0: sqrt)")
    x_max: float = setting(4.0, "largest x")
    noise: float = setting(0.0, "standard deviation of Gaussian noise added to y")
    decimals: int = setting(1, "decimals of x and y")

    def __post_init__(self) -> None:
        _point_range("points", self.points)
        _point_range("heldout_points", self.heldout_points)
        check_int("lines", self.lines, 1, _MAX_LINES)
        check_int("heldout_per_class", self.heldout_per_class, 1, _MAX_PER_CLASS)
        check_int("decimals", self.decimals, 0, 6)
        for low, high in (("k_min", "k_max"), ("b_min", "b_max"), ("x_min", "x_max")):
            a = check_number(low, getattr(self, low), minimum=-1e6, maximum=1e6)
            b = check_number(high, getattr(self, high), minimum=-1e6, maximum=1e6)
            if a > b:
                raise ConfigError(f"{low} ({a:g}) must not be above {high} ({b:g})")
        check_number("x_min", self.x_min, minimum=0.0)
        check_number("noise", self.noise, minimum=0.0, maximum=1e6)
        if not self.x_grid[0] <= self.x_grid[1]:
            raise ConfigError(
                f"no x with {self.decimals} decimals lies in [{self.x_min:g}, {self.x_max:g}]"
            )

    @property
    def point_range(self) -> tuple[int, int]:
        return _point_range("points", self.points)

    @property
    def heldout_range(self) -> tuple[int, int]:
        return _point_range("heldout_points", self.heldout_points)

    @property
    def x_grid(self) -> tuple[int, int]:
        """The x values drawn, as whole numbers of 10^-decimals: first and last."""
        scale = 10**self.decimals
        return math.ceil(self.x_min * scale - 1e-9), math.floor(self.x_max * scale + 1e-9)


@dataclass(frozen=True)
class LatchConfig(TaskConfig):
    """Lines key + N noise symbols + '=' + label: the key is the label, to be carried
    across the noise."""

    gap: int = setting(20, "noise symbols between the key and '=' (N)")
    noise: str = setting("abcd", "the noise symbols")
    labels: str = setting("AB", "the labels (2 to 10 distinct symbols); each line's key is one")
    lines: int = setting(2000, "training lines")
    heldout_per_class: int = setting(100, "held-out items per label")

    def __post_init__(self) -> None:
        check_int("gap", self.gap, 0, 100_000)
        check_int("lines", self.lines, 1, _MAX_LINES)
        check_int("heldout_per_class", self.heldout_per_class, 1, _MAX_PER_CLASS)
        for name in ("noise", "labels"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{name} must be a non-empty string of symbols")
            if len(set(value)) != len(value):
                raise ConfigError(f"{name} {value!r} lists a symbol twice")
            bad = sorted(set(value) & set(_FORBIDDEN))
            if bad:
                raise ConfigError(f"{name} {value!r} must not contain {', '.join(map(repr, bad))}")
        if not 2 <= len(self.labels) <= 10:
            raise ConfigError(f"labels must be 2 to 10 symbols, got {len(self.labels)}")
        shared = sorted(set(self.noise) & set(self.labels))
        if shared:
            raise ConfigError(
                f"noise and labels share {', '.join(map(repr, shared))}; the label would "
                "be ambiguous"
            )


def _decimal(value: float) -> Decimal:
    """A float as the decimal it was written as (0.05, not 0.05000000000000000277)."""
    return Decimal(repr(float(value)))


def _point_range(name: str, text: object) -> tuple[int, int]:
    """'A-B' or 'N' as (A, B), 1 <= A <= B <= 100."""
    if isinstance(text, str):
        low, dash, high = text.strip().partition("-")
        if low.strip().isdigit() and (not dash or high.strip().isdigit()):
            a = int(low)
            b = int(high) if dash else a
            if 1 <= a <= b <= _MAX_POINTS:
                return a, b
    raise ConfigError(
        f"{name} must be N or A-B with 1 <= A <= B <= {_MAX_POINTS} (e.g. 1-8), got {text!r}"
    )
