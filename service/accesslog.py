"""The structured access log (`charlm serve --access-log`): one JSON line per request.

    {"time": "2026-11-30T06:41:18.373+00:00", "method": "POST", "route": "/predict",
     "path": "/predict", "status": 200, "duration_ms": 3.806, "model": "alphabet",
     "request_bytes": 37, "response_bytes": 247, "client": "127.0.0.1"}

Lines go to standard error through the `charlm.access` logger, whatever uvicorn's own
log settings. The text of a request (`text`, `prompt`) is never written unless
`--access-log-text` asks for it; the model's name is read from the JSON body.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import route_name

__all__ = ["AccessLog", "access_logger"]

_TEXT_FIELDS = ("text", "prompt")


def access_logger() -> logging.Logger:
    """The `charlm.access` logger, writing bare lines to standard error."""
    log = logging.getLogger("charlm.access")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


class AccessLog:
    def __init__(self, app: ASGIApp, *, include_text: bool = False) -> None:
        self.app = app
        self.include_text = include_text
        self.log = access_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        body: list[bytes] = []
        sizes = {"in": 0, "out": 0}
        status = 500

        async def reading() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                sizes["in"] += len(chunk)
                if sizes["in"] <= 1 << 20:
                    body.append(chunk)
            return message

        async def writing(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sizes["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, reading, writing)
        finally:
            line: dict[str, Any] = {
                "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
                "method": scope.get("method"),
                "route": route_name(scope),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                **self._fields(b"".join(body)),
                "request_bytes": sizes["in"],
                "response_bytes": sizes["out"],
                "client": (scope.get("client") or [None])[0],
            }
            self.log.info(
                json.dumps(line, ensure_ascii=False).encode("utf-8", "backslashreplace").decode()
            )

    def _fields(self, raw: bytes) -> dict[str, Any]:
        """The model named in a JSON body, and with `include_text` its text."""
        try:
            data = json.loads(raw) if raw else None
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to read
            return {"model": None}
        if not isinstance(data, dict):
            return {"model": None}
        model = data.get("model")
        out: dict[str, Any] = {"model": model if isinstance(model, str) else None}
        if self.include_text:
            for name in _TEXT_FIELDS:
                if name in data:
                    out[name] = data[name]
        return out
