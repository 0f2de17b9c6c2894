"""ServiceSettings: where the models are and what one request may ask for.

Built from keyword arguments in code and tests, or from `CHARLM_*` environment variables
by `settings_from_env` (that is how `charlm serve` hands its flags to uvicorn workers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from charlm import ConfigError

__all__ = ["ENV_PREFIX", "ServiceSettings", "settings_from_env"]

ENV_PREFIX = "CHARLM_"


@dataclass(frozen=True)
class ServiceSettings:
    checkpoints_dir: Path = Path("checkpoints")
    max_text_chars: int = 20_000
    """Longest `text` or `prompt` accepted (413 above it)."""
    max_continuation: int = 2_000
    """Most characters of greedy continuation per /predict call."""
    max_generate_length: int = 10_000
    """Most characters per /generate call."""
    max_alternatives: int = 10
    """Most runner-up characters listed per step."""
    max_pending: int = 64
    """Most inference requests running or waiting at once; more get 503 at once."""
    max_batch: int = 64
    """Most concurrent /predict calls answered by one batched forward pass."""
    batch_wait_ms: float = 2.0
    """How long a batch waits for calls still arriving (never when none are)."""
    device: str = "cpu"

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoints_dir", Path(self.checkpoints_dir))
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("max_") and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{f.name} must be a positive integer, got {value!r}")
        wait = self.batch_wait_ms
        if not isinstance(wait, int | float) or not 0 <= wait <= 1000:
            raise ConfigError(f"batch_wait_ms must be between 0 and 1000, got {wait!r}")


def settings_from_env(environ: dict[str, str] | None = None) -> ServiceSettings:
    """Settings from CHARLM_CHECKPOINTS_DIR, CHARLM_MAX_TEXT_CHARS, ... (others default)."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    for f in fields(ServiceSettings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is None:
            continue
        if f.name.startswith("max_"):
            try:
                values[f.name] = int(raw)
            except ValueError as e:
                raise ConfigError(f"{ENV_PREFIX}{f.name.upper()} must be an integer") from e
        elif f.name == "batch_wait_ms":
            try:
                values[f.name] = float(raw)
            except ValueError as e:
                raise ConfigError(f"{ENV_PREFIX}{f.name.upper()} must be a number") from e
        else:
            values[f.name] = raw
    return ServiceSettings(**values)  # type: ignore[arg-type]
