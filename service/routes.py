"""The HTTP routes: each checks the request's sizes against the server's caps, makes one
library call and returns the library's result. Every value check is the library's.

Routes run on the event loop and hand every model computation (and every model load) to
the compute thread (service/compute.py): /score and /accuracy as one job each; /predict
goes through the batcher (service/batching.py), /generate through the generation engine
(service/generation.py), which steps every generation in progress together and stops one
as soon as its client has gone, whether it streams Server-Sent Events or answers at the
end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import BaseRoute

from charlm import (
    Generation,
    InputError,
    NoModelError,
    Prediction,
    SampleConfig,
    ScoreResult,
    TooManyItemsError,
)
from charlm.flags import flag_for
from charlm.html_report import score_page, script_safe
from charlm.inference import ActivationResult
from charlm.inference.activations import activation_pieces
from charlm.registry import LoadedModel, ModelRegistry
from charlm.slices import Sliced
from charlm.tasks import AccuracyResult, AnswerItem, accuracy_pieces

from . import schemas
from .batching import PredictBatcher, is_long
from .compute import ComputeThread
from .errors import STATUS
from .generation import GenerationEngine, Stream
from .limits import check_items, check_limits, check_scored
from .metrics import CONTENT_TYPE_LATEST, MODELS, exposition, server_counts
from .settings import ServiceSettings
from .sliced import Fragments, answer, json_of, respond, result_json, score_json, until_gone

__all__ = ["ADMITTED", "ERRORS", "GUARDED", "STATIC_DIR", "admitted_paths", "model_for", "router"]

router = APIRouter()

STATIC_DIR = Path(__file__).parent / "static"

# What the HTTP layer answers by itself; every other error status comes from the library's
# errors, through `errors.STATUS`, so that a status added there is documented here too.
_HTTP_ERRORS = {
    400: "Malformed JSON, a Content-Length that is not a number, or a Host header that does "
    "not name this server",
    401: "The server has an API key and the request did not carry it",
    408: "The request body did not arrive in time",
    413: "The body is over its limit",
    415: "The body is not sent as JSON",
    422: "A field or a value of the wrong type",
    429: "Over this client's rate limit",
}


def _documented_errors() -> dict[int | str, dict[str, Any]]:
    """The error responses of every route: the HTTP layer's, and each status of
    `errors.STATUS` with the `error.type`s that answer with it."""
    kinds: dict[int, list[str]] = {}
    for status, kind in STATUS.values():
        kinds.setdefault(status, []).append(kind)
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(kinds) | set(_HTTP_ERRORS)):
        parts = [_HTTP_ERRORS[status]] if status in _HTTP_ERRORS else []
        if status in kinds:
            parts.append("error.type " + ", ".join(f"`{k}`" for k in kinds[status]))
        out[status] = {"model": schemas.ErrorResponse, "description": "; ".join(parts)}
    return out


ERRORS = _documented_errors()

ADMITTED: dict[str, Any] = {"x-charlm-admitted": True}
"""The `openapi_extra` of a route that computes with a model: admission control
(service/guard.py's `Admission`) counts it, and refuses it with 503 while the server has
`--max-pending` such requests in progress. Marked on each route, so none escapes."""


def admitted_paths(routes: Iterable[BaseRoute]) -> frozenset[str]:
    """The paths of the routes marked `ADMITTED`."""
    return frozenset(
        r.path
        for r in routes
        if isinstance(r, APIRoute) and (r.openapi_extra or {}).get("x-charlm-admitted")
    )


GUARDED: dict[int | str, dict[str, Any]] = {k: v for k, v in ERRORS.items() if k in (400, 429)}


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


async def model_for(reg: ModelRegistry, cpu: ComputeThread, name: str | None) -> LoadedModel:
    """The named model; (re)loading it from disk, when needed, runs on the compute thread."""
    model = reg.peek(name)
    if model is None:
        model = await cpu.run(reg.get, name)
    return model


@router.get("/", include_in_schema=False)
def inspector() -> FileResponse:
    """The per-step confidence inspector (static HTML; it calls the JSON endpoints)."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/health", response_model=schemas.HealthResponse, responses=GUARDED)
async def health(request: Request, reg: Registry) -> schemas.HealthResponse:
    """Liveness, and what the server has done. With several worker processes the counts
    are the whole server's (service/metrics.py), whichever worker answers."""
    batcher: PredictBatcher = request.app.state.batcher
    counts = server_counts() or {
        "pending": request.app.state.pending.count,
        "predict_batches": schemas.BatchStats.model_validate(batcher.stats, from_attributes=True),
        "generation": schemas.GenerationStats.model_validate(
            request.app.state.generation.stats, from_attributes=True
        ),
    }
    return schemas.HealthResponse(
        status="ok", models=reg.names(), threads=request.app.state.threads, **counts
    )


@router.get("/ready", response_model=schemas.ReadyResponse, responses=GUARDED | {503: ERRORS[503]})
async def ready(reg: Registry) -> schemas.ReadyResponse:
    """For a load balancer: 200 once this process holds at least one model, 503 (no_model)
    before; open without the API key, like /health."""
    if not reg.names():
        raise NoModelError("not ready: no model is loaded")
    return schemas.ReadyResponse(status="ready", models=reg.names())


@router.get(
    "/metrics",
    responses={
        **GUARDED,
        200: {"description": "Prometheus text format", "content": {"text/plain": {}}},
    },
)
async def metrics(reg: Registry) -> Response:
    """The server's metrics in Prometheus's text format (service/metrics.py): requests by
    route and status, latencies, /predict batch sizes, characters generated, requests in
    progress, models loaded, and each worker's memory."""
    MODELS.set(len(reg.names()))
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/models", response_model=schemas.ModelsResponse, responses=ERRORS)
async def list_models(reg: Registry, cpu: Compute) -> schemas.ModelsResponse:
    await cpu.run(reg.refresh)
    models = [
        schemas.ModelInfo(**m.predictor.card.model_dump(), loaded_at=m.loaded_at)
        for m in reg.models()
    ]
    return schemas.ModelsResponse(models=models, errors=reg.errors())


@router.get("/models/{name}", response_model=schemas.ModelInfo, responses=ERRORS)
async def get_model(name: str, reg: Registry, cpu: Compute) -> schemas.ModelInfo:
    """One model's card: architecture, vocabulary, how it was trained, and the diagnosis
    of the run that made it."""
    model = await model_for(reg, cpu, name)
    return schemas.ModelInfo(**model.predictor.card.model_dump(), loaded_at=model.loaded_at)


@router.post("/models/reload", response_model=schemas.ReloadResponse, responses=ERRORS)
async def reload_models(
    body: schemas.ReloadRequest, reg: Registry, cpu: Compute
) -> schemas.ReloadResponse:
    """Rescan the checkpoints directory. Takes a JSON body (`{}`), so that no cross-site
    form can trigger it."""
    report = await cpu.run(reg.refresh)
    return schemas.ReloadResponse(
        models=reg.names(), loaded=report.loaded, removed=report.removed, errors=report.errors
    )


@router.post("/predict", openapi_extra=ADMITTED, response_model=Prediction, responses=ERRORS)
async def predict(req: schemas.PredictRequest, request: Request) -> Response:
    """Concurrent calls on the same model are answered together, in one batch.

    The hot path: it reads `app.state` directly rather than through dependencies, which
    cost FastAPI about 40 us per call to resolve, and writes its answer itself
    (`_json_answer`).
    """
    state = request.app.state
    check_limits(
        state.settings,
        text=req.text,
        continuation=req.continuation_length,
        alternatives=req.alternatives,
    )
    model = await model_for(state.registry, state.compute, req.model)
    query = model.predictor.query(
        req.text,
        req.top_k,
        req.continuation_length,
        req.alternatives,
        on_unknown=req.on_unknown,
        replacement=req.replacement,
    )
    batcher: PredictBatcher = state.batcher
    if not is_long(query):  # answered in milliseconds; watching its client costs more
        return _json_answer(await batcher.predict(model.predictor, query))
    return _json_answer(await until_gone(request, batcher.predict(model.predictor, query)))


def _json_answer(result: BaseModel) -> Response:
    """`result` as JSON (`json_of`). Returned as a model, FastAPI would validate it
    against the response model again, convert it to plain Python and encode that with the
    json module."""
    return Response(json_of(result), media_type="application/json")


@router.post("/score", openapi_extra=ADMITTED, response_model=ScoreResult, responses=ERRORS)
async def score(
    req: schemas.ScoreRequest, request: Request, reg: Registry, cfg: Settings
) -> StreamingResponse:
    """Per-step confidence over the text; the answer is written as the text is read
    (service/sliced.py), so FastAPI does not check it against the response model again."""
    check_limits(cfg, text=req.text, alternatives=req.alternatives)
    check_scored(cfg, len(req.text))
    model = await model_for(reg, request.app.state.compute, req.model)
    pieces = model.predictor.score_pieces(
        req.text,
        req.alternatives,
        start=req.start,
        next_top=req.next_top,
        on_unknown=req.on_unknown,
        replacement=req.replacement,
    )
    return respond(await answer(request, score_json(pieces)))


@router.post(
    "/report",
    openapi_extra=ADMITTED,
    responses={
        **ERRORS,
        200: {
            "description": "The report, an HTML page to save",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
    },
)
async def report(
    req: schemas.ReportRequest, request: Request, reg: Registry, cfg: Settings
) -> StreamingResponse:
    """The self-contained HTML report of /score for the text (`charlm score --html`), as a
    file to save: it opens in any browser and fetches nothing."""
    check_limits(cfg, text=req.text, alternatives=req.alternatives)
    check_scored(cfg, len(req.text))
    if req.generated_from is not None and not 1 <= req.generated_from < len(req.text):
        raise InputError(
            f"generated_from must be a position in the text, from 1 to {len(req.text) - 1}; "
            f"got {req.generated_from}"
        )
    model = await model_for(reg, request.app.state.compute, req.model)
    pieces = model.predictor.score_pieces(
        req.text, req.alternatives, on_unknown=req.on_unknown, replacement=req.replacement
    )
    data = await answer(request, score_json(pieces))
    before, after = score_page(model.name, len(req.text) - 1, req.generated_from)
    page = [before.encode(), *(script_safe(f.decode()).encode() for f in data), after.encode()]
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in model.name)
    name = f"charlm-{safe}-report.html"
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
    return respond(page, media_type="text/html; charset=utf-8", headers=disposition)


@router.post(
    "/activations", openapi_extra=ADMITTED, response_model=ActivationResult, responses=ERRORS
)
async def activations(
    req: schemas.ActivationsRequest, request: Request, reg: Registry, cfg: Settings
) -> StreamingResponse:
    """Inside the model: units of one layer over the text (the cell state, the output or
    a gate, after each character), and the units most correlated with simple features
    of the text (inside quotes, position in the line, ...)."""
    check_limits(cfg, text=req.text)
    values = len(req.text) * len(req.cells)
    if values > cfg.max_activation_values:
        raise TooManyItemsError(
            "activation values (characters x cells)",
            values,
            cfg.max_activation_values,
            flag=flag_for("max_activation_values"),
        )
    check_scored(cfg, len(req.text))
    model = await model_for(reg, request.app.state.compute, req.model)
    pieces = activation_pieces(
        model.predictor,
        req.text,
        layer=req.layer,
        kind=req.kind,
        cells=req.cells,
        top=req.top,
        marked=req.marked,
    )
    return respond(await answer(request, _then_json(pieces, "series")))


def _then_json(job: Sliced[ActivationResult], field: str) -> Sliced[Fragments]:
    return (yield from result_json((yield from job), field))


@router.post("/accuracy", openapi_extra=ADMITTED, response_model=AccuracyResult, responses=ERRORS)
async def accuracy(
    req: schemas.AccuracyRequest, request: Request, reg: Registry, cfg: Settings
) -> AccuracyResult:
    """How often the model's greedy continuation of each prompt is its answer, and the
    probability it gives the answers, overall and by field (`charlm accuracy`)."""
    check_items(cfg, [(item.prompt, item.answer) for item in req.items])
    model = await model_for(reg, request.app.state.compute, req.model)
    items = [AnswerItem(i.prompt, i.answer, dict(i.fields)) for i in req.items]
    return await answer(request, accuracy_pieces(model.predictor, items, by=req.by))


@router.post(
    "/generate",
    openapi_extra=ADMITTED,
    response_model=Generation,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def generate(
    req: schemas.GenerateRequest, request: Request, reg: Registry, cfg: Settings, cpu: Compute
) -> Any:
    """Generations in progress advance together, one batched step per character
    (service/generation.py); other requests wait at most one step for the model."""
    check_limits(cfg, text=req.prompt, what="prompt", length=req.length)
    model = await model_for(reg, cpu, req.model)
    config = SampleConfig(
        length=req.length,
        temperature=req.temperature,
        top_k=req.top_k,
        top_p=req.top_p,
        seed=req.seed,
    )
    engine: GenerationEngine = request.app.state.generation
    stream = await engine.open(model.predictor, req.prompt, config)
    if not req.stream:
        produced: list[str] = []
        async for piece in _read(stream, request):
            produced.extend(piece)
        return Generation(model=model.name, prompt=req.prompt, text="".join(produced))
    return StreamingResponse(
        _events(model, req.prompt, stream, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _read(stream: Stream, request: Request) -> AsyncIterator[list[str]]:
    """The stream's pieces; it is dropped as soon as the client has disconnected, or
    when the reader stops early."""
    try:
        async for piece in stream.pieces():
            if await request.is_disconnected():
                return
            yield piece
    finally:
        stream.cancel()


async def _events(
    model: LoadedModel, prompt: str, stream: Stream, request: Request
) -> AsyncIterator[str]:
    """One `data: {"char": c}` event per character, then `event: done` with the text."""
    produced: list[str] = []
    async for piece in _read(stream, request):
        for c in piece:
            yield f"data: {json.dumps({'char': c}, ensure_ascii=False)}\n\n"
        produced.extend(piece)
    if await request.is_disconnected():
        return
    done = Generation(model=model.name, prompt=prompt, text="".join(produced))
    yield f"event: done\ndata: {done.model_dump_json()}\n\n"
