"""Shared `from_dict` for the frozen config dataclasses: unknown keys are an error."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

from charlm.errors import ConfigError

__all__ = ["from_dict"]

C = TypeVar("C")


def from_dict(cls: type[C], data: object, what: str) -> C:
    """Build the dataclass `cls` from `data`, rejecting unknown keys and bad values."""
    assert is_dataclass(cls)
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{what} has unknown keys: {', '.join(map(str, unknown))}")
    kwargs: dict[str, Any] = dict(data)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{what}: {e}") from e
