"""/v1/completions, /v1/models and /v1/chat/completions.

A completion is charlm's generation (the service's generation engine, so a seeded
completion is `/generate`'s text for the same seed and settings), cut before the first
stop text; its logprobs, and with `echo` the prompt's, are `/score`'s probabilities
(`charlm.inference.logprobs`). Choice `i` of a prompt samples with `seed + i`. Streaming
sends one chunk per piece the engine makes (a character held back while it could be the
start of a stop text), then `data: [DONE]`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from charlm import InputError, LimitExceededError, SampleConfig
from charlm.inference.logprobs import cut_at_stop, logprob_pieces
from charlm.inference.unknown import read_text
from charlm.registry import LoadedModel

from ..generation import GenerationEngine
from ..limits import check_choices, check_limits, check_scored
from ..routes import ADMITTED, ERRORS, model_for
from ..settings import ServiceSettings
from ..sliced import Fragments, answer, array, json_bytes, logprobs_json, obj, respond
from . import schemas
from .tokens import decode

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

_STOPS = 4


@router.get("/models", response_model=schemas.ModelList, responses=ERRORS)
async def models(request: Request) -> schemas.ModelList:
    """The models, in OpenAI's list shape."""
    reg = request.app.state.registry
    await request.app.state.compute.run(reg.refresh)
    return schemas.ModelList(
        data=[schemas.ModelObject(id=m.name, created=int(m.loaded_at)) for m in reg.models()]
    )


@router.post("/chat/completions", responses=ERRORS)
async def chat() -> None:
    """Refused: a character model has no chat template."""
    raise InputError(
        "a character model has no chat template, so /v1/chat/completions is not "
        "supported; send the text to continue to /v1/completions as `prompt`"
    )


def _check(
    req: schemas.CompletionRequest, model: LoadedModel, settings: ServiceSettings
) -> list[str]:
    """The request's stop texts; refuses what charlm cannot do, naming the field, and
    what is over the server's caps, naming the flag."""
    unsupported = [
        ("frequency_penalty", req.frequency_penalty != 0),
        ("presence_penalty", req.presence_penalty != 0),
        ("logit_bias", bool(req.logit_bias)),
        ("suffix", req.suffix is not None),
        ("best_of", req.best_of is not None and req.best_of != req.n),
    ]
    for name, used in unsupported:
        if used:
            raise InputError(f"{name} is not supported by charlm's completions")
    stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stops) > _STOPS:
        raise LimitExceededError("stop texts", len(stops), _STOPS)
    vocab = len(model.predictor.vocab)
    if req.logprobs is not None and req.logprobs > vocab:
        raise LimitExceededError("logprobs", req.logprobs, vocab)
    check_limits(settings, alternatives=req.logprobs or 0)
    return [s for s in stops if s]


def _scored(req: schemas.CompletionRequest, prompts: list[str]) -> int:
    """The characters whose logprobs the request asks for, over all its choices (at
    most: a completion may stop early)."""
    if req.logprobs is None:
        return 0
    return req.n * sum((len(p) if req.echo else 0) + req.max_tokens for p in prompts)


def _prompts(
    prompt: str | list[str] | list[int] | list[list[int]], model: LoadedModel
) -> list[str]:
    """The prompts as texts: one text, several, or token ids (one list or several)."""
    if isinstance(prompt, str):
        return [prompt]
    if all(isinstance(p, int) for p in prompt):
        return [decode(model, prompt, "prompt")]  # type: ignore[arg-type]
    return [p if isinstance(p, str) else decode(model, p, "prompt") for p in prompt]  # type: ignore[arg-type]


def _fed(model: LoadedModel, req: schemas.CompletionRequest, prompt: str) -> str:
    """What the model reads of `prompt` (checked) under the request's `on_unknown`."""
    if not prompt:
        return prompt
    vocab = model.predictor.vocab
    return read_text(vocab, prompt, req.on_unknown, req.replacement, what="prompt").read


def _config(req: schemas.CompletionRequest, index: int) -> SampleConfig:
    seed = None if req.seed is None else (req.seed + index) % 2**63
    return SampleConfig(
        length=req.max_tokens, temperature=req.temperature, top_p=req.top_p, seed=seed
    )


@router.post(
    "/completions",
    openapi_extra=ADMITTED,
    response_model=schemas.Completion,
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def completions(req: schemas.CompletionRequest, request: Request) -> Any:
    """OpenAI's legacy completions: characters are tokens."""
    state = request.app.state
    if isinstance(req.prompt, list) and not req.prompt:
        raise InputError("prompt is an empty list; give at least one text")
    if isinstance(req.prompt, list) and not all(isinstance(p, int) for p in req.prompt):
        check_choices(state.settings, len(req.prompt), req.n)  # before any is decoded
    model = await model_for(state.registry, state.compute, req.model)
    prompts = _prompts(req.prompt, model)
    check_choices(state.settings, len(prompts), req.n)
    for p in prompts:
        check_limits(state.settings, text=p, what="prompt", length=req.max_tokens)
    stops = _check(req, model, state.settings)
    check_scored(state.settings, _scored(req, prompts))
    fed = {p: _fed(model, req, p) for p in prompts}  # checked before any generation starts
    head: dict[str, Any] = {
        "id": "cmpl-" + uuid.uuid4().hex,
        "created": int(time.time()),
        "model": model.name,
    }
    jobs = [(i * req.n + j, p, j) for i, p in enumerate(prompts) for j in range(req.n)]
    if req.stream:
        return StreamingResponse(
            _stream(req, request, model, stops, [(i, p, j, fed[p]) for i, p, j in jobs], head),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    choices: list[Fragments] = []
    made = 0
    known: dict[tuple[str, int], Fragments] = {}  # the n choices of an echo share logprobs
    for index, prompt, j in jobs:
        text, finish = await _complete(request, model, fed[prompt], _config(req, j), stops)
        made += len(text)
        logprobs = await _logprobs(request, model, req, prompt, text, known=known)
        shown = prompt + text if req.echo else text
        choice = json_bytes({"text": shown, "index": index})
        choices.append(obj(choice, {"logprobs": logprobs, "finish_reason": [json_bytes(finish)]}))
    used = sum(len(p) for p in prompts)
    usage = schemas.Usage(prompt_tokens=used, completion_tokens=made, total_tokens=used + made)
    body = schemas.Completion(**head, choices=[], usage=usage).model_dump_json(exclude={"choices"})
    return respond(obj(body.encode(), {"choices": array(choices)}))


async def _pieces(
    request: Request, model: LoadedModel, prompt: str, config: SampleConfig
) -> AsyncIterator[str]:
    """The generation's characters as the engine makes them, in pieces."""
    if config.length == 0:
        return
    engine: GenerationEngine = request.app.state.generation
    stream = await engine.open(model.predictor, prompt, config)
    try:
        async for piece in stream.pieces():
            if await request.is_disconnected():
                return
            yield "".join(piece)
    finally:
        stream.cancel()


async def _complete(
    request: Request, model: LoadedModel, prompt: str, config: SampleConfig, stops: list[str]
) -> tuple[str, Literal["stop", "length"]]:
    made = ""
    async for piece in _pieces(request, model, prompt, config):
        made += piece
        cut, stopped = cut_at_stop(made, stops)
        if stopped:
            return cut, "stop"
    return made, "length"


async def _logprobs(
    request: Request,
    model: LoadedModel,
    req: schemas.CompletionRequest,
    prompt: str,
    text: str,
    start: int | None = None,
    known: dict[tuple[str, int], Fragments] | None = None,
) -> Fragments:
    """The JSON of the logprobs of `prompt + text` from position `start` (by default the
    whole choice: the completion, and the prompt too with `echo`), each character's
    offset counted from the start of the choice's text, as the answer shows it; `null`
    without `logprobs`. Computed in pieces on the compute thread (service/sliced.py),
    once per text and start in `known`."""
    if req.logprobs is None:
        return [b"null"]
    if start is None:
        start = 0 if req.echo else len(prompt)
    key = (prompt + text, start)
    if known is not None and key in known:
        return known[key]
    shift = 0 if req.echo else len(prompt)  # the choice's text starts after the prompt
    pieces = logprob_pieces(
        model.predictor,
        prompt + text,
        start=start,
        top=req.logprobs,
        on_unknown=req.on_unknown,
        replacement=req.replacement,
    )
    body = await answer(request, logprobs_json(pieces, shift))
    if known is not None:
        known[key] = body
    return body


async def _stream(
    req: schemas.CompletionRequest,
    request: Request,
    model: LoadedModel,
    stops: list[str],
    jobs: list[tuple[int, str, int, str]],
    head: dict[str, Any],
) -> AsyncIterator[str]:
    """Server-Sent Events of completion chunks, one choice after another."""
    hold = max((len(s) for s in stops), default=1) - 1  # could begin a stop text
    made_total = 0

    def chunk(index: int, text: str, logprobs: Fragments, finish: str | None) -> str:
        choice = obj(
            json_bytes({"text": text, "index": index}),
            {"logprobs": logprobs, "finish_reason": [json_bytes(finish)]},
        )
        body = obj(json_bytes({**head, "object": "text_completion"}), {"choices": array([choice])})
        return f"data: {b''.join(body).decode()}\n\n"

    for index, prompt, j, read in jobs:
        sent = ""
        if req.echo:
            echoed = await _logprobs(request, model, req, prompt, "")
            yield chunk(index, prompt, echoed, None)
        made, finish = "", "length"
        async for piece in _pieces(request, model, read, _config(req, j)):
            made += piece
            cut, stopped = cut_at_stop(made, stops)
            ready = cut if stopped else made[: max(len(sent), len(made) - hold)]
            if len(ready) > len(sent):
                logprobs = await _logprobs(
                    request, model, req, prompt, ready, len(prompt) + len(sent)
                )
                yield chunk(index, ready[len(sent) :], logprobs, None)
                sent = ready
            if stopped:
                finish = "stop"
                break
        if finish == "length" and len(made) > len(sent):
            logprobs = await _logprobs(request, model, req, prompt, made, len(prompt) + len(sent))
            yield chunk(index, made[len(sent) :], logprobs, None)
            sent = made
        made_total += len(sent)
        yield chunk(index, "", [b"null"], finish)
    if req.stream_options and req.stream_options.include_usage:
        used = sum(len(p) for _, p, j, _ in jobs if j == 0)
        usage = {"prompt_tokens": used, "completion_tokens": made_total,
                 "total_tokens": used + made_total}  # fmt: skip
        last = {**head, "object": "text_completion", "choices": [], "usage": usage}
        yield f"data: {json.dumps(last)}\n\n"
    yield "data: [DONE]\n\n"
