"""The OpenAI completions API's bodies, as charlm answers them. Tokens are characters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from charlm.inference.logprobs import TokenLogprobs
from charlm.inference.sampling import MAX_SEED

__all__ = [
    "Completion",
    "CompletionChoice",
    "CompletionRequest",
    "DetokenizeRequest",
    "DetokenizeResponse",
    "ModelList",
    "ModelObject",
    "StreamOptions",
    "TokenizeRequest",
    "TokenizeResponse",
    "TokenizerInfo",
    "Usage",
]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool = False


class CompletionRequest(BaseModel):
    """OpenAI's legacy completions request; fields charlm cannot honour are refused by
    name rather than ignored (`frequency_penalty` other than 0, `logit_bias`, ...)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [{"model": "alphabet", "prompt": "abc", "max_tokens": 5, "logprobs": 2}]
        },
    )

    model: str | None = Field(None, description="The model (checkpoint name).")
    prompt: str | list[str] | list[int] | list[list[int]] = Field(
        description="A text, or a list of texts: one choice each. Token ids (the model's "
        "vocabulary indices, as /tokenize gives them) are accepted in place of a text."
    )
    max_tokens: int = Field(16, description="Characters to generate.", ge=0)
    temperature: float = Field(1.0, description="0 is greedy.", ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=16, description="Completions per prompt.")
    stop: str | list[str] | None = Field(
        None, description="Up to 4 texts; the completion ends before the first one."
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="Same seed, same text; choice i of a prompt uses seed + i.",
    )
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: int | None = Field(
        None,
        ge=0,
        description="List the ln p of each character and of this many alternatives at each "
        "step (at most the model's vocabulary): the raw distribution's, before temperature "
        "and top-p, as charlm's /score gives them.",
    )
    echo: bool = Field(False, description="Put the prompt, with its logprobs, before the text.")
    on_unknown: Literal["refuse", "skip", "replace"] = Field(
        "refuse",
        description="charlm's own: characters of the prompt outside the vocabulary are "
        "refused (422), skipped (their logprob is null and generation reads the prompt "
        "without them) or read as `replacement`.",
    )
    replacement: str | None = Field(None, description="With on_unknown 'replace'.")
    best_of: int | None = Field(None, ge=1, description="Only n (or unset) is supported.")
    frequency_penalty: float = Field(0.0, description="Only 0 is supported.")
    presence_penalty: float = Field(0.0, description="Only 0 is supported.")
    logit_bias: dict[str, float] | None = Field(None, description="Not supported (empty only).")
    suffix: str | None = Field(None, description="Not supported.")
    user: str | None = Field(None, description="Accepted and not used.")


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    model: str | None = None
    prompt: str
    add_special_tokens: bool = Field(False, description="A character model has none.")


class TokenizeResponse(BaseModel):
    tokens: list[int]
    count: int
    max_model_len: int | None = None


class DetokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    model: str | None = None
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    prompt: str


class TokenizerInfo(BaseModel):
    tokenizer_class: str = "charlm character vocabulary"
    model: str
    vocab_size: int
    eos_token: str | None = None
    bos_token: str | None = None
    pad_token: str | None = None


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: TokenLogprobs | None
    finish_reason: Literal["stop", "length"] | None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "charlm"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]
