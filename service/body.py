"""Request bodies read in full, within a size and a time limit, before anything else runs.

ASGI middleware. A request's body is read here: a `Content-Length` over `max_bytes` is
refused at once with 413 before a byte of it is read, a body that grows past `max_bytes`
is cut off with 413, and a body not complete `timeout_s` after the request arrived gets
408. In each case the connection is closed. Only a complete body goes on, replayed from
memory, to admission control and the routes: a slow or oversized client never holds an
in-progress slot, a thread, or the event loop's time.

`BodyFraming`, ahead of every middleware that may answer (service/app.py), refuses with
400 a request that gives both `Content-Length` and `Transfer-Encoding`, and closes the
connection (RFC 9112 section 6.1). `charlm serve`'s parser (llhttp, service/protocol.py)
refuses such a request before the app sees it; this layer gives the same answer under a
server whose parser does not, such as uvicorn's h11, which reads such a body as chunked
and keeps the connection open, so bytes that a proxy trusting Content-Length took for
this request's body would be read as a second request.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

__all__ = ["AMBIGUOUS_LENGTH", "BodyFraming", "BodyLimit"]

AMBIGUOUS_LENGTH = (
    "the request gives both Content-Length and Transfer-Encoding, so where its body ends "
    "is ambiguous; send one of them"
)


class BodyFraming:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _length_and_chunked(scope):
            await error_response(
                400,
                "ambiguous_body_length",
                AMBIGUOUS_LENGTH,
                {"Connection": "close"},
            )(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        close = {"Connection": "close"}
        length = _content_length(scope)
        if length == -1:
            await error_response(400, "bad_request", "Content-Length is not a number", close)(
                scope, receive, send
            )
            return
        if length is not None and length > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout_s):  # one deadline for the whole body
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left before its body was complete
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        break
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await error_response(
                408,
                "body_timeout",
                f"the request body did not arrive within {self.timeout_s:g} s",
                close,
            )(scope, receive, send)
            return
        if size > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # then: wait for the client to disconnect, as usual

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await error_response(
            413,
            "body_too_large",
            f"the request body is over {self.max_bytes:,} bytes",
            {"Connection": "close"},
            limit=self.max_bytes,
        )(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when there is none, -1 when it is not a number."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() and len(text) <= 18 else -1
    return None


def _length_and_chunked(scope: Scope) -> bool:
    names = {name for name, _ in scope.get("headers", [])}
    return b"content-length" in names and b"transfer-encoding" in names
