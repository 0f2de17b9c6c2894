"""The one table from charlm errors to HTTP answers, and the handlers that use it.

Every error body has the same shape: {"error": {"type": "...", "message": "..."}},
sometimes with more fields (the unknown characters and their positions, the validation
problems, a limit). Routes never build HTTP errors themselves: they raise charlm errors.
Error bodies are JSON that any client can decode: a character that UTF-8 cannot carry (a
lone surrogate a client sent) is written as a JSON escape, never dropped or crashed on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from charlm import errors

from .sliced import ClientGone, escaped_json

__all__ = ["STATUS", "error_response", "install_error_handlers", "response_for", "status_for"]

log = logging.getLogger(__name__)

STATUS: dict[type[errors.CharLMError], tuple[int, str]] = {
    errors.CharLMError: (500, "internal"),
    errors.ConfigError: (422, "invalid_value"),
    errors.CorpusError: (422, "corpus"),
    errors.CorpusDownloadError: (502, "corpus_download"),
    errors.TrainingError: (500, "training"),
    errors.InputError: (422, "input"),
    errors.UnknownCharacterError: (422, "unknown_character"),
    errors.TextTooLongError: (413, "text_too_long"),
    errors.LimitExceededError: (422, "limit_exceeded"),
    errors.TooManyItemsError: (413, "too_many_items"),
    errors.ModelNameError: (422, "model_name"),
    errors.AmbiguousModelError: (422, "ambiguous_model"),
    errors.CheckpointError: (503, "checkpoint"),
    errors.CheckpointNotFoundError: (404, "checkpoint_not_found"),
    errors.UnknownModelError: (404, "unknown_model"),
    errors.CheckpointExistsError: (409, "checkpoint_exists"),
    errors.CheckpointLockedError: (409, "checkpoint_locked"),
    errors.IncompatibleCheckpointError: (503, "incompatible_checkpoint"),
    errors.NoModelError: (503, "no_model"),
    errors.OverloadedError: (503, "overloaded"),
}

_MAX_LISTED = 100


class SafeJSONResponse(JSONResponse):
    """JSON whose strings may hold lone surrogates: those become JSON escapes."""

    def render(self, content: Any) -> bytes:
        return escaped_json(content)


def status_for(exc: errors.CharLMError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500, "internal"


def error_response(
    status: int,
    kind: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return SafeJSONResponse(
        {"error": {"type": kind, "message": message, **extra}}, status_code=status, headers=headers
    )


def response_for(exc: errors.CharLMError) -> JSONResponse:
    """The JSON error response for a charlm error, by the table above."""
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.UnknownCharacterError):
        extra["characters"] = [{"char": c, "position": p} for c, p in exc.unknown[:_MAX_LISTED]]
    if isinstance(exc, errors.TextTooLongError | errors.LimitExceededError):
        extra["limit"] = exc.limit
        if exc.flag:
            extra["flag"] = exc.flag
    headers = {"Retry-After": "1"} if isinstance(exc, errors.OverloadedError) else None
    status, kind = status_for(exc)
    return error_response(status, kind, str(exc), headers, **extra)


async def _charlm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.CharLMError)
    return response_for(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if any(p.get("type") == "json_invalid" for p in problems):
        ctx = problems[0].get("ctx", {})
        return error_response(
            400, "malformed_json", f"request body is not valid JSON: {ctx.get('error', '')}".strip()
        )
    if any(p.get("loc") == ("body",) for p in problems) and not _is_json(request):
        return error_response(
            415,
            "unsupported_media_type",
            "send the request body as JSON with the header Content-Type: application/json",
        )
    details = [
        {
            "field": ".".join(str(x) for x in p.get("loc", ()) if x != "body"),
            "problem": str(p.get("msg", "")),
        }
        for p in problems[:_MAX_LISTED]
    ]
    message = "; ".join(f"{d['field'] or 'body'}: {d['problem']}" for d in details)
    return error_response(422, "invalid_request", message, details=details)


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    return kind == "application/json" or kind.endswith("+json")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, RecursionError):  # FastAPI's 400 for any unreadable body
        return error_response(
            400, "json_too_deep", "request body is JSON nested too deeply to read; flatten it"
        )
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, kind, str(exc.detail), headers=exc.headers)


async def _client_gone(request: Request, exc: Exception) -> JSONResponse:
    """Nobody reads it: the status (nginx's 499, "client closed request") is for the
    access log and the metrics."""
    return error_response(499, "client_gone", "the client disconnected; the work stopped")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", f"internal error: {type(exc).__name__}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.CharLMError, _charlm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_exception_handler(Exception, _unexpected)
