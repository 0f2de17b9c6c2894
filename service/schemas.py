"""Request bodies, and the responses the service adds to the library's results.

The answers of /predict, /score, /generate and /accuracy are the library's own result
models (`charlm.Prediction`, `charlm.ScoreResult`, `charlm.Generation`,
`charlm.tasks.AccuracyResult`): declared once, there.
Requests here declare fields and types only. They are strict (unknown fields, wrong
types such as a string for a number, and non-finite numbers get 422 before anything
runs); the values themselves (a negative count, a temperature below 0) are checked by
the library, so that the command line, a program and HTTP get the same message. Caps
that depend on the server's settings are checked in `limits`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from charlm import ModelCard, SampleConfig
from charlm.inference.defaults import PredictConfig, ScoreConfig, default_and_help
from charlm.inference.sampling import MAX_SEED
from charlm.names import RULE

__all__ = [
    "AccuracyRequest",
    "ActivationsRequest",
    "AnswerItemRequest",
    "BatchStats",
    "ErrorResponse",
    "GenerateRequest",
    "HealthResponse",
    "ModelInfo",
    "ModelsResponse",
    "PredictRequest",
    "ReadyResponse",
    "ReloadRequest",
    "ReloadResponse",
    "ReportRequest",
    "ScoreRequest",
    "UnknownPolicy",
]

_MODEL = Field(
    None,
    description=f"Model name (its checkpoint directory: {RULE}); may be omitted when one model "
    "is loaded.",
    examples=["alphabet"],
)


def _count(default: int, description: str) -> Any:
    """An integer field whose lower bound (0) the library checks, shown in the schema."""
    return Field(default, description=description, json_schema_extra={"minimum": 0})


def _asked(cls: type, name: str, **bounds: Any) -> Any:
    """The field `name` of a request, with the default and help of the config class `cls`
    (the command line's too), and `bounds` (by default: at least 0) shown in the schema."""
    default, about = default_and_help(cls, name)
    schema = bounds or {"minimum": 0}
    return Field(default, description=about[0].upper() + about[1:] + ".", json_schema_extra=schema)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class UnknownPolicy(BaseModel):
    """What to do with characters outside the model's vocabulary
    (`charlm.inference.unknown`)."""

    on_unknown: str = Field(
        "refuse",
        description="refuse (422 naming each one), skip (not fed; reading goes on from the "
        "state before it; listed in the answer's `unknown`), or replace (read as "
        "`replacement`).",
        json_schema_extra={"enum": ["refuse", "skip", "replace"]},
    )
    replacement: str | None = Field(
        None, description="With on_unknown 'replace': a character the model knows."
    )


class PredictRequest(_Request, UnknownPolicy):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"model": "alphabet", "text": "abc", "continuation_length": 5}]
        }
    )

    model: str | None = _MODEL
    text: str = Field(description="The text so far; at least one character.", examples=["abc"])
    top_k: int = _asked(PredictConfig, "top_k")
    continuation_length: int = _asked(PredictConfig, "continuation_length")
    alternatives: int = _asked(PredictConfig, "alternatives")


class _TextToScore(_Request, UnknownPolicy):
    model: str | None = _MODEL
    text: str = Field(description="Text to score; at least two characters.", examples=["abcz"])
    alternatives: int = _asked(ScoreConfig, "alternatives")


class ReportRequest(_TextToScore):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model": "alphabet", "text": "abcz", "alternatives": 2}]}
    )

    generated_from: int | None = Field(
        None,
        description="Where a continuation the model made begins in the text (a position, "
        "from 1): the report marks the characters from there as generated and gives their "
        "statistics apart from the written text's.",
        json_schema_extra={"minimum": 1},
    )


class ScoreRequest(_TextToScore):
    start: int = Field(
        1,
        description="List the steps from this position on (an editor re-scoring a text "
        "changed from there on); the summary covers the whole text either way.",
        json_schema_extra={"minimum": 1},
    )
    next_top: int | None = Field(
        None,
        description="Also list the likeliest characters to follow the text: how many "
        "(0 lists all); omitted: none.",
        json_schema_extra={"minimum": 0},
    )


class ActivationsRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"model": "notes", "text": 'a "quote"', "kind": "cell", "cells": [3]}]
        }
    )

    model: str | None = _MODEL
    text: str = Field(description="Text to read; at least one character.", examples=['a "b"'])
    layer: int = Field(
        -1, description="The layer, from 0 at the input; negative counts from the last."
    )
    kind: str = Field(
        "cell",
        description="cell (tanh of the LSTM cell state), hidden (the layer's output), "
        "input_gate, forget_gate or output_gate; a GRU or RNN has hidden only.",
    )
    cells: list[int] = Field(
        default_factory=list,
        description="The units whose activations to list, by index in the layer. Characters "
        "times units is at most the server's max_activation_values (413 above).",
    )
    top: int = _count(5, "Units listed per feature of the text, most correlated first.")
    marked: list[list[int]] = Field(
        default_factory=list,
        description="Spans [start, end) of the text (code points) that make a feature of "
        "your own: the units most correlated with it are listed first, as 'marked'.",
    )


class GenerateRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"model": "alphabet", "prompt": "w", "length": 8}]}
    )

    model: str | None = _MODEL
    prompt: str = Field(
        "", description="Text to continue; empty starts from a random character.", examples=["w"]
    )
    length: int = _asked(SampleConfig, "length")
    temperature: float = _asked(SampleConfig, "temperature")
    top_k: int = _asked(SampleConfig, "top_k")
    top_p: float = _asked(SampleConfig, "top_p", exclusiveMinimum=0, maximum=1)
    seed: int | None = _asked(SampleConfig, "seed", minimum=0, maximum=MAX_SEED)
    stream: bool = Field(False, description="Stream characters as Server-Sent Events.")


class AnswerItemRequest(_Request):
    prompt: str = Field(
        description="The text before the answer; at least one character.", examples=["abc"]
    )
    answer: str = Field(
        description="What should follow the prompt; at least one character.", examples=["d"]
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description='Labels to break the accuracy down by, e.g. {"gap": "20"}.',
    )


class AccuracyRequest(_Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "alphabet",
                    "items": [
                        {"prompt": "abc", "answer": "d", "fields": {"context": "3"}},
                        {"prompt": "xy", "answer": "za", "fields": {"context": "2"}},
                    ],
                }
            ]
        }
    )

    model: str | None = _MODEL
    items: list[AnswerItemRequest] = Field(
        description="The questions: each prompt's greedy continuation is compared with its "
        "answer. At least one; at most the server's max_accuracy_items (413 above)."
    )
    by: list[str] | None = Field(
        None, description="Fields to break the accuracy down by; omitted: every field given."
    )


class ReloadRequest(_Request):
    """No fields: the body exists so that only JSON requests (never a plain form) reload."""


class ModelInfo(ModelCard):
    loaded_at: float = Field(description="When the server loaded it (Unix time).")


class ModelsResponse(BaseModel):
    models: list[ModelInfo]
    errors: dict[str, str] = Field(
        description="Checkpoint directories that are not served, and why: by model name for "
        "one that does not load, by its name escaped and quoted for one whose name is not a "
        "model name (with the name to rename it to)."
    )


class ReloadResponse(BaseModel):
    models: list[str]
    loaded: list[str]
    removed: list[str]
    errors: dict[str, str]


class BatchStats(BaseModel):
    batches: int = Field(description="Batches run since the server started.")
    requests: int = Field(description="/predict calls answered in those batches.")
    largest: int = Field(description="Most calls in one batch.")


class GenerationStats(BaseModel):
    active: int = Field(description="Generations in progress now.")
    generations: int = Field(description="/generate calls started since the server started.")
    steps: int = Field(description="Batched model steps taken for them.")
    characters: int = Field(description="Characters made in those steps.")
    largest: int = Field(description="Most generations advanced by one step.")


class ReadyResponse(BaseModel):
    status: str
    models: list[str]


class HealthResponse(BaseModel):
    status: str
    models: list[str]
    pending: int = Field(description="Inference requests running or waiting right now.")
    threads: int = Field(description="CPU threads this worker process computes with.")
    predict_batches: BatchStats = Field(description="How /predict calls have been batched.")
    generation: GenerationStats = Field(description="How /generate calls have been batched.")


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
