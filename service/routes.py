"""The HTTP routes: each checks the request's sizes, makes one library call and
returns its schema. Plain `def` routes run in the thread pool, so model work never
blocks the event loop; the one async route streams Server-Sent Events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from charlm import SampleConfig
from charlm.registry import LoadedModel, ModelRegistry
from service import schemas as S
from service.limits import check_limits
from service.settings import ServiceSettings

__all__ = ["router"]

router = APIRouter()

STATIC_DIR = Path(__file__).parent / "static"

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": S.ErrorResponse} for code in (400, 404, 413, 422, 503)
}
_SSE_BATCH_S = 0.03  # stream what was produced at least this often
_TRAINING_KEYS = (
    "step",
    "train_loss",
    "val_loss",
    "best_val_loss",
    "best_step",
    "val_held_out",
    "elapsed_s",
    "stop_reason",
    "corpus",
    "preset",
)


def registry(request: Request) -> ModelRegistry:
    reg: ModelRegistry = request.app.state.registry
    return reg


def settings(request: Request) -> ServiceSettings:
    s: ServiceSettings = request.app.state.settings
    return s


Registry = Annotated[ModelRegistry, Depends(registry)]
Settings = Annotated[ServiceSettings, Depends(settings)]


@router.get("/", include_in_schema=False)
def inspector() -> FileResponse:
    """The per-step confidence inspector (static HTML; it calls the JSON endpoints)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/health", response_model=S.HealthResponse)
def health(request: Request, reg: Registry) -> S.HealthResponse:
    return S.HealthResponse(
        status="ok", models=reg.names(), pending=request.app.state.pending.count
    )


@router.get("/models", response_model=S.ModelsResponse)
def list_models(reg: Registry) -> S.ModelsResponse:
    reg.refresh()
    return S.ModelsResponse(models=[_info(m) for m in reg.models()], errors=reg.errors())


@router.post("/models/reload", response_model=S.ReloadResponse)
def reload_models(reg: Registry) -> S.ReloadResponse:
    report = reg.refresh()
    return S.ReloadResponse(
        models=reg.names(), loaded=report.loaded, removed=report.removed, errors=report.errors
    )


@router.post("/predict", response_model=S.PredictResponse, responses=_ERRORS)
def predict(
    req: S.PredictRequest,
    reg: Registry,
    cfg: Settings,
) -> S.PredictResponse:
    check_limits(
        cfg, text=req.text, continuation=req.continuation_length, alternatives=req.alternatives
    )
    model = reg.get(req.model)
    result = model.predictor.predict(req.text, req.top_k, req.continuation_length, req.alternatives)
    return S.PredictResponse.model_validate(
        {
            "model": model.name,
            "next": result.next,
            "continuation": result.continuation.text,
            "steps": result.continuation.steps,
        },
        from_attributes=True,
    )


@router.post("/score", response_model=S.ScoreResponse, responses=_ERRORS)
def score(
    req: S.ScoreRequest,
    reg: Registry,
    cfg: Settings,
) -> S.ScoreResponse:
    check_limits(cfg, text=req.text, alternatives=req.alternatives)
    model = reg.get(req.model)
    result = model.predictor.score(req.text, req.alternatives)
    return S.ScoreResponse.model_validate(
        {"model": model.name, **vars(result)}, from_attributes=True
    )


@router.post(
    "/generate",
    response_model=S.GenerateResponse,
    responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
def generate(
    req: S.GenerateRequest,
    request: Request,
    reg: Registry,
    cfg: Settings,
) -> Any:
    check_limits(cfg, text=req.prompt, what="prompt", length=req.length)
    model = reg.get(req.model)
    config = SampleConfig(
        length=req.length,
        temperature=req.temperature,
        top_k=req.top_k,
        top_p=req.top_p,
        seed=req.seed,
    )
    model.predictor.vocab.check(req.prompt, what="prompt")
    if not req.stream:
        text = model.predictor.generate(req.prompt, config)
        return S.GenerateResponse(model=model.name, prompt=req.prompt, text=text)
    chars = model.predictor.sample(req.prompt, config)
    return StreamingResponse(
        _events(model, req.prompt, chars, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    model: LoadedModel, prompt: str, chars: Iterator[str], request: Request
) -> AsyncIterator[str]:
    """One `data: {"char": c}` event per character, then `event: done` with the text.

    Characters are produced in the thread pool in short batches; between batches the
    client is checked, and generation stops as soon as it has gone.
    """
    produced: list[str] = []
    while True:
        if await request.is_disconnected():
            return
        batch = await run_in_threadpool(_take, chars, _SSE_BATCH_S)
        for c in batch:
            yield f"data: {json.dumps({'char': c}, ensure_ascii=False)}\n\n"
        produced.extend(batch)
        if not batch:
            break
    done = {"model": model.name, "prompt": prompt, "text": "".join(produced)}
    yield f"event: done\ndata: {json.dumps(done, ensure_ascii=False)}\n\n"


def _take(chars: Iterator[str], seconds: float) -> list[str]:
    """Characters from `chars` for up to `seconds` (at least one, unless exhausted)."""
    out: list[str] = []
    end = time.perf_counter() + seconds
    for c in chars:
        out.append(c)
        if time.perf_counter() >= end:
            break
    return out


def _info(model: LoadedModel) -> S.ModelInfo:
    info = model.predictor.info
    summary = info.summary if info is not None else {}
    vocab = list(model.predictor.vocab.chars)
    return S.ModelInfo(
        name=model.name,
        vocab_size=len(vocab),
        vocab=vocab,
        parameters=model.predictor.model.num_parameters(),
        architecture=model.predictor.model.config.to_dict(),
        training={k: summary.get(k) for k in _TRAINING_KEYS},
        loaded_at=model.loaded_at,
    )
