"""What every config dataclass shares, and the value checks every input goes through.

- `setting(default, help)`: a dataclass field that carries its help text, so that the
  command line's flags, their help and their defaults are derived from the config
  classes (see `charlm/flags.py`) rather than written a second time.
- `from_dict(cls, data, what)`: build a config from a JSON object, refusing unknown keys.
- `check_int`, `check_number`, `check_choice`: the one place where each kind of value
  check lives, so that a bad value gives the same message whether it came from the
  command line, a program or an HTTP request.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, field, fields, is_dataclass
from typing import Any, TypeVar

from charlm.errors import ConfigError

MAX_SEED = 2**63 - 1
"""The largest seed any config takes (torch's generators take a signed 64-bit one)."""

__all__ = ["check_choice", "check_int", "check_number", "from_dict", "help_of", "setting"]

C = TypeVar("C")


def setting(default: Any, help: str) -> Any:
    """A dataclass field with a default and the help text its command-line flag shows."""
    return field(default=default, metadata={"help": help})


def help_of(f: Field[Any]) -> str:
    return str(f.metadata.get("help", ""))


def from_dict(cls: type[C], data: object, what: str) -> C:
    """Build the dataclass `cls` from `data`, rejecting unknown keys and bad values."""
    assert is_dataclass(cls)
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{what} has unknown keys: {', '.join(map(str, unknown))}")
    missing = [
        f.name
        for f in fields(cls)
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise ConfigError(f"{what} is missing {', '.join(missing)}")
    return cls(**dict(data))


def check_int(name: str, value: object, minimum: int = 0, maximum: int | None = None) -> int:
    """`value` if it is an integer (not a bool) in [minimum, maximum]; else ConfigError."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and value >= minimum and (maximum is None or value <= maximum):  # type: ignore[operator]
        return value  # type: ignore[return-value]
    if maximum is None:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {_show(value)}")
    raise ConfigError(f"{name} must be an integer from {minimum} to {maximum}, got {_show(value)}")


def check_number(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> float:
    """`value` if it is a finite number within the bounds given; else ConfigError.

    `minimum`/`maximum` are inclusive bounds, `above`/`below` exclusive ones.
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    x = float(value) if ok else math.nan  # type: ignore[arg-type]
    if ok and math.isfinite(x):
        ok = (
            (minimum is None or x >= minimum)
            and (maximum is None or x <= maximum)
            and (above is None or x > above)
            and (below is None or x < below)
        )
    else:
        ok = False
    if ok:
        return x
    low = f">= {minimum:g}" if minimum is not None else f"> {above:g}" if above is not None else ""
    high = f"<= {maximum:g}" if maximum is not None else f"< {below:g}" if below is not None else ""
    bounds = " and ".join(b for b in (low, high) if b)
    raise ConfigError(
        f"{name} must be a finite number{' ' + bounds if bounds else ''}, got {_show(value)}"
    )


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {_show(value)}")


def _show(value: object) -> str:
    """A value as an error message shows it: short, and safe to print anywhere."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text.encode("ascii", "backslashreplace").decode("ascii")
