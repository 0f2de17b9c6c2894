"""Request and response bodies, with their bounds and descriptions.

Requests are strict: unknown fields, wrong types (a string for a number) and
non-finite numbers are refused with 422 before any model runs. Caps that depend on the
server's settings (text length, continuation length, ...) are checked in `limits`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CharProbOut",
    "ContinuationStepOut",
    "ErrorResponse",
    "GenerateRequest",
    "GenerateResponse",
    "HealthResponse",
    "ModelInfo",
    "ModelsResponse",
    "PredictRequest",
    "PredictResponse",
    "ReloadResponse",
    "ScoreRequest",
    "ScoreResponse",
    "ScoreStepOut",
]

_MODEL = Field(
    None,
    description="Model name (its checkpoint directory); may be omitted when one model is loaded.",
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class PredictRequest(_Request):
    model: str | None = _MODEL
    text: str = Field(description="The text so far; at least one character.")
    top_k: int = Field(5, ge=0, description="How many next characters to list; 0 lists all.")
    continuation_length: int = Field(0, ge=0, description="Characters of greedy continuation.")
    alternatives: int = Field(3, ge=0, description="Runner-up characters per continued step.")


class ScoreRequest(_Request):
    model: str | None = _MODEL
    text: str = Field(description="Text to score; at least two characters.")
    alternatives: int = Field(3, ge=0, description="Runner-up characters per step.")


class GenerateRequest(_Request):
    model: str | None = _MODEL
    prompt: str = Field("", description="Text to continue; empty starts from a random character.")
    length: int = Field(200, ge=0, description="Characters to generate.")
    temperature: float = Field(1.0, ge=0, description="Softmax temperature; 0 is greedy.")
    top_k: int = Field(0, ge=0, description="Sample only from the k likeliest; 0 means all.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling probability mass.")
    seed: int | None = Field(
        None, ge=0, le=2**63 - 1, description="Same seed, same text; omitted means random."
    )
    stream: bool = Field(False, description="Stream characters as Server-Sent Events.")


class CharProbOut(BaseModel):
    char: str
    prob: float


class ContinuationStepOut(BaseModel):
    char: str
    prob: float
    top: list[CharProbOut]


class PredictResponse(BaseModel):
    model: str
    next: list[CharProbOut] = Field(description="Next-character distribution, likeliest first.")
    continuation: str
    steps: list[ContinuationStepOut]


class ScoreStepOut(BaseModel):
    position: int
    char: str
    prob: float = Field(description="Probability the model gave this character.")
    rank: int = Field(description="1 when it was the model's top choice.")
    top_char: str
    top_prob: float
    entropy_bits: float
    top: list[CharProbOut]


class ScoreResponse(BaseModel):
    model: str
    steps: list[ScoreStepOut]
    bits_per_char: float
    min_prob: float
    min_position: int


class GenerateResponse(BaseModel):
    model: str
    prompt: str
    text: str = Field(description="The generated characters, without the prompt.")


class ModelInfo(BaseModel):
    name: str
    vocab_size: int
    vocab: list[str]
    parameters: int
    architecture: dict[str, Any]
    training: dict[str, Any]
    loaded_at: float


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    errors: dict[str, str] = Field(description="Checkpoints that could not be loaded, and why.")


class ReloadResponse(BaseModel):
    models: list[str]
    loaded: list[str]
    removed: list[str]
    errors: dict[str, str]


class BatchStats(BaseModel):
    batches: int = Field(description="Batches run since the server started.")
    requests: int = Field(description="/predict calls answered in those batches.")
    largest: int = Field(description="Most calls in one batch.")


class HealthResponse(BaseModel):
    status: str
    models: list[str]
    pending: int = Field(description="Inference requests running or waiting right now.")
    predict_batches: BatchStats = Field(description="How /predict calls have been batched.")


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
