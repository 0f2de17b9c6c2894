"""The one table from charlm errors to HTTP status codes, and the handlers that use it.

Every error body has the same shape: {"error": {"type": "...", "message": "..."}},
sometimes with more fields (the unknown characters and their positions, the validation
problems). Routes never build HTTP errors themselves: they raise charlm errors.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from charlm import errors as E

__all__ = ["STATUS", "error_response", "install_error_handlers", "response_for", "status_for"]

log = logging.getLogger(__name__)

STATUS: dict[type[E.CharLMError], int] = {
    E.CharLMError: 500,
    E.ConfigError: 422,
    E.CorpusError: 422,
    E.CorpusDownloadError: 502,
    E.TrainingError: 500,
    E.InputError: 422,
    E.UnknownCharacterError: 422,
    E.TextTooLongError: 413,
    E.LimitExceededError: 422,
    E.ModelNameError: 422,
    E.AmbiguousModelError: 422,
    E.CheckpointError: 503,
    E.CheckpointNotFoundError: 404,
    E.UnknownModelError: 404,
    E.CheckpointExistsError: 409,
    E.IncompatibleCheckpointError: 503,
    E.NoModelError: 503,
    E.OverloadedError: 503,
}

_MAX_LISTED = 100


def status_for(exc: E.CharLMError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_type(cls: type) -> str:
    """UnknownCharacterError -> 'unknown_character'."""
    name = cls.__name__.removesuffix("Error") or cls.__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_response(
    status: int,
    kind: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": kind, "message": message, **extra}}, status_code=status, headers=headers
    )


def response_for(exc: E.CharLMError) -> JSONResponse:
    """The JSON error response for a charlm error, by the table above."""
    extra: dict[str, Any] = {}
    if isinstance(exc, E.UnknownCharacterError):
        extra["characters"] = [{"char": c, "position": p} for c, p in exc.unknown[:_MAX_LISTED]]
    if isinstance(exc, E.TextTooLongError | E.LimitExceededError):
        extra["limit"] = exc.limit
    headers = {"Retry-After": "1"} if isinstance(exc, E.OverloadedError) else None
    return error_response(status_for(exc), error_type(type(exc)), str(exc), headers, **extra)


async def _charlm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, E.CharLMError)
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
            "problem": p.get("msg", ""),
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
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, kind, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", f"internal error: {type(exc).__name__}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(E.CharLMError, _charlm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
