"""Errors on the /v1 routes in OpenAI's shape, wherever they come from.

charlm answers every error as {"error": {"type", "message", ...}}, from the routes, the
validation of bodies and the middleware (Host names, API key, rate limit, body size,
overload). OpenAI's clients read {"error": {"message", "type", "param", "code"}}: this
ASGI middleware, outermost, rewrites the body of any answer of 400 or more to a path
under /v1/ into that shape. The status stays charlm's; `code` is charlm's error type,
`type` OpenAI's class of error for the status, `param` the field at fault when known.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["OpenAIErrors", "openai_error"]

_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          429: "rate_limit_error"}  # fmt: skip


def openai_error(status: int, body: bytes) -> bytes:
    """charlm's error body as OpenAI's."""
    try:
        error: dict[str, Any] = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        error = {"type": "http_error", "message": body.decode("utf-8", "replace")}
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    details = error.get("details") or []
    param = details[0].get("field") or None if details else None
    if error.get("type") == "unknown_character":
        param = "prompt"
    shaped = {"message": error.get("message", ""), "type": kind, "param": param,
              "code": error.get("type")}  # fmt: skip
    return json.dumps({"error": shaped}, ensure_ascii=False).encode("utf-8", "backslashreplace")


class OpenAIErrors:
    def __init__(self, app: ASGIApp, *, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        parts: list[bytes] = []

        async def reshape(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = openai_error(start["status"], b"".join(parts))
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, reshape)
