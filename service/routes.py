"""The HTTP routes: each checks the request's sizes, makes one library call and
returns its schema. Routes run on the event loop and hand every model computation
(and every model load) to the compute thread (service/compute.py); /predict goes
through the batcher (service/batching.py); /generate can stream Server-Sent Events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, StreamingResponse

from charlm import PredictQuery, SampleConfig
from charlm.registry import LoadedModel, ModelRegistry
from service import schemas as S
from service.batching import PredictBatcher
from service.compute import ComputeThread
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


# Dependencies are `async def` so they run on the event loop, not in the thread pool.
async def registry(request: Request) -> ModelRegistry:
    reg: ModelRegistry = request.app.state.registry
    return reg


async def settings(request: Request) -> ServiceSettings:
    s: ServiceSettings = request.app.state.settings
    return s


async def compute(request: Request) -> ComputeThread:
    c: ComputeThread = request.app.state.compute
    return c


Registry = Annotated[ModelRegistry, Depends(registry)]
Settings = Annotated[ServiceSettings, Depends(settings)]
Compute = Annotated[ComputeThread, Depends(compute)]


async def _model(reg: ModelRegistry, cpu: ComputeThread, name: str | None) -> LoadedModel:
    """The named model; (re)loading it from disk, when needed, runs on the compute thread."""
    model = reg.peek(name)
    if model is None:
        model = await cpu.run(reg.get, name)
    return model


@router.get("/", include_in_schema=False)
def inspector() -> FileResponse:
    """The per-step confidence inspector (static HTML; it calls the JSON endpoints)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/health", response_model=S.HealthResponse)
async def health(request: Request, reg: Registry) -> S.HealthResponse:
    batcher: PredictBatcher = request.app.state.batcher
    return S.HealthResponse(
        status="ok",
        models=reg.names(),
        pending=request.app.state.pending.count,
        predict_batches=S.BatchStats.model_validate(batcher.stats, from_attributes=True),
    )


@router.get("/models", response_model=S.ModelsResponse)
async def list_models(reg: Registry, cpu: Compute) -> S.ModelsResponse:
    await cpu.run(reg.refresh)
    return S.ModelsResponse(models=[_info(m) for m in reg.models()], errors=reg.errors())


@router.post("/models/reload", response_model=S.ReloadResponse)
async def reload_models(reg: Registry, cpu: Compute) -> S.ReloadResponse:
    report = await cpu.run(reg.refresh)
    return S.ReloadResponse(
        models=reg.names(), loaded=report.loaded, removed=report.removed, errors=report.errors
    )


@router.post("/predict", response_model=S.PredictResponse, responses=_ERRORS)
async def predict(req: S.PredictRequest, request: Request) -> S.PredictResponse:
    """Concurrent calls on the same model are answered together, in one batch.

    The hot path: it reads `app.state` directly rather than through dependencies, which
    cost FastAPI about 40 us per call to resolve.
    """
    state = request.app.state
    reg: ModelRegistry = state.registry
    cfg: ServiceSettings = state.settings
    cpu: ComputeThread = state.compute
    batcher: PredictBatcher = state.batcher
    check_limits(
        cfg, text=req.text, continuation=req.continuation_length, alternatives=req.alternatives
    )
    model = await _model(reg, cpu, req.model)
    model.predictor.check_text(req.text)
    query = PredictQuery(req.text, req.top_k, req.continuation_length, req.alternatives)
    result = await batcher.predict(model.predictor, query)
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
async def score(
    req: S.ScoreRequest,
    reg: Registry,
    cfg: Settings,
    cpu: Compute,
) -> S.ScoreResponse:
    check_limits(cfg, text=req.text, alternatives=req.alternatives)
    model = await _model(reg, cpu, req.model)
    result = await cpu.run(model.predictor.score, req.text, req.alternatives)
    return S.ScoreResponse.model_validate(
        {"model": model.name, **vars(result)}, from_attributes=True
    )


@router.post(
    "/generate",
    response_model=S.GenerateResponse,
    responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def generate(
    req: S.GenerateRequest,
    request: Request,
    reg: Registry,
    cfg: Settings,
    cpu: Compute,
) -> Any:
    check_limits(cfg, text=req.prompt, what="prompt", length=req.length)
    model = await _model(reg, cpu, req.model)
    config = SampleConfig(
        length=req.length,
        temperature=req.temperature,
        top_k=req.top_k,
        top_p=req.top_p,
        seed=req.seed,
    )
    model.predictor.vocab.check(req.prompt, what="prompt")
    if not req.stream:
        text = await cpu.run(model.predictor.generate, req.prompt, config)
        return S.GenerateResponse(model=model.name, prompt=req.prompt, text=text)
    chars = model.predictor.sample(req.prompt, config)
    return StreamingResponse(
        _events(model, req.prompt, chars, request, cpu),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    model: LoadedModel,
    prompt: str,
    chars: Iterator[str],
    request: Request,
    cpu: ComputeThread,
) -> AsyncIterator[str]:
    """One `data: {"char": c}` event per character, then `event: done` with the text.

    Characters are produced on the compute thread in short slices (so other requests
    get their turn between them); between slices the client is checked, and generation
    stops as soon as it has gone.
    """
    produced: list[str] = []
    while True:
        if await request.is_disconnected():
            return
        batch = await cpu.run(_take, chars, _SSE_BATCH_S)
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
