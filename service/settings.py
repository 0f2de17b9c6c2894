"""ServiceSettings: where the models are, where to listen, and what a request may ask for.

One pydantic-settings class: every field is read from a `CHARLM_<FIELD>` environment
variable when not given in code, is checked once here (its bounds are the field's
constraints), and becomes a `charlm serve --<field>` flag with its description as the
help (`charlm/flags.py`). `charlm serve` validates the flags into settings, then hands
them to each uvicorn worker process as environment variables (`to_environ`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from charlm import ConfigError
from charlm.errors import CharLMError
from charlm.runtime import pick_device

__all__ = ["ENV_PREFIX", "ServiceSettings", "settings_from", "to_environ"]

ENV_PREFIX = "CHARLM_"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    checkpoints_dir: Path = Field(
        Path("checkpoints"), description="directory of checkpoints; each is served by name"
    )
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes")
    threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="CPU threads per worker for model computations (default: the free "
        "cores divided among the workers, at least one each)",
    )
    device: str = Field(
        "cpu",
        description="where models compute: cpu, cuda or cuda:N (auto: CUDA when present); "
        "the CPU by default, where charlm's fused per-character stepper runs",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = Field(
        "info", description="uvicorn log level"
    )
    max_text_chars: int = Field(
        20_000, ge=1, description="longest text or prompt accepted (413 above it)"
    )
    max_continuation: int = Field(
        2_000, ge=1, description="most characters of greedy continuation per /predict call"
    )
    max_generate_length: int = Field(10_000, ge=1, description="most characters per /generate")
    max_alternatives: int = Field(10, ge=1, description="most runner-up characters per step")
    max_accuracy_items: int = Field(
        1_000, ge=1, description="most items per /accuracy request (413 above it)"
    )
    max_prompts: int = Field(
        64, ge=1, description="most prompts per /v1/completions request (413 above it)"
    )
    max_choices: int = Field(
        128,
        ge=1,
        description="most choices per /v1/completions request: prompts times n (413 above it)",
    )
    max_scored_chars: int = Field(
        100_000,
        ge=1,
        description="most characters one request has the model score or read: a /score or "
        "/report text, every /v1 choice's characters with logprobs, every /accuracy item's "
        "prompt and answer (413 above it)",
    )
    max_activation_values: int = Field(
        200_000,
        ge=1,
        description="most values per /activations answer: characters times units asked for "
        "(413 above it)",
    )
    max_pending: int = Field(
        64, ge=1, description="inference requests in progress before more get 503 at once"
    )
    max_batch: int = Field(64, ge=1, description="most /predict calls per batched pass")
    batch_wait_ms: float = Field(
        2.0, ge=0, le=1000, description="how long a batch waits for calls still arriving"
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="largest request body accepted (413 above it)"
    )
    body_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="seconds a request body may take to arrive (408 after)"
    )
    access_log: bool = Field(
        False,
        description="write one JSON line per request to standard error: route, status, "
        "duration, model and sizes (never the text, unless --access-log-text)",
    )
    access_log_text: bool = Field(
        False, description="with --access-log, also write each request's text or prompt"
    )
    api_key: str | None = Field(
        None,
        min_length=16,
        description="require `Authorization: Bearer KEY` on every route but /health and the "
        "inspector's static files; prefer the CHARLM_API_KEY variable, which `ps` cannot show "
        "(default: none, open to anyone who can connect)",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host header names to answer, comma-separated; '*' for any (default: "
        "localhost names and the --host address; any name when bound to every interface)",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="web origins whose pages may call the API, comma-separated (default: "
        "none: no cross-origin access)",
    )
    rate_limit: float | None = Field(
        None,
        gt=0,
        description="requests per second each client address may make on average, in "
        "bursts of up to twice that (default: no limit)",
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        try:
            pick_device(value)
        except CharLMError as e:
            raise ValueError(str(e)) from None
        return value

    @field_validator("allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def settings_from(values: dict[str, Any] | None = None) -> ServiceSettings:
    """Settings from `values`, the rest from CHARLM_* variables or defaults; bad values
    are a `ConfigError` naming the setting."""
    try:
        return ServiceSettings(**(values or {}))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, p['loc'])) or 'settings'}: {p['msg']}" for p in e.errors()
        )
        raise ConfigError(f"service settings: {problems}") from None


def to_environ(settings: ServiceSettings) -> dict[str, str]:
    """The CHARLM_* variables that rebuild `settings` in another process."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if isinstance(value, list):
            text = ",".join(value)
        else:
            text = value if isinstance(value, str) else json.dumps(value)
        env[ENV_PREFIX + name.upper()] = text
    return env
