"""What one request may ask for, and how many may be in progress at once.

`check_limits` compares a request's sizes with the server's caps, and `check_items` those
of an /accuracy request (how many items, and each one's prompt and answer). `Admission`
is ASGI middleware that counts inference requests from arrival until their last byte is
sent (streams included) and answers 503 at once when `max_pending` are already in
progress, so overload never builds an unbounded queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from charlm import LimitExceededError, OverloadedError, TextTooLongError, TooManyItemsError

from .errors import response_for
from .metrics import PENDING
from .settings import ServiceSettings

__all__ = ["Admission", "Pending", "check_items", "check_limits"]


def check_limits(
    settings: ServiceSettings,
    *,
    text: str = "",
    what: str = "text",
    continuation: int = 0,
    length: int = 0,
    alternatives: int = 0,
) -> None:
    if len(text) > settings.max_text_chars:
        raise TextTooLongError(len(text), settings.max_text_chars, what=what)
    caps = (
        ("continuation_length", continuation, settings.max_continuation),
        ("length", length, settings.max_generate_length),
        ("alternatives", alternatives, settings.max_alternatives),
    )
    for name, value, cap in caps:
        if value > cap:
            raise LimitExceededError(name, value, cap)


def check_items(settings: ServiceSettings, items: Sequence[tuple[str, str]]) -> None:
    """(prompt, answer) pairs: at most `max_accuracy_items` of them (413 above), each
    prompt and answer within `max_text_chars` together, and each answer (the greedy
    continuation read for it) within `max_continuation`."""
    if len(items) > settings.max_accuracy_items:
        raise TooManyItemsError("items", len(items), settings.max_accuracy_items)
    for n, (prompt, answer) in enumerate(items, 1):
        check_limits(settings, text=prompt + answer, what=f"item {n}'s prompt and answer")
        if len(answer) > settings.max_continuation:
            raise LimitExceededError(
                f"item {n}'s answer length", len(answer), settings.max_continuation
            )


class Pending:
    """Counts of requests in progress, in all and by path (one event loop per process:
    no lock needed)."""

    def __init__(self) -> None:
        self.count = 0
        self._by_path: dict[str, int] = {}

    def on(self, path: str) -> int:
        """Requests to `path` in progress."""
        return self._by_path.get(path, 0)

    def enter(self, path: str) -> None:
        self.count += 1
        PENDING.inc()
        self._by_path[path] = self._by_path.get(path, 0) + 1

    def leave(self, path: str) -> None:
        self.count -= 1
        PENDING.dec()
        self._by_path[path] -= 1


class Admission:
    def __init__(
        self, app: ASGIApp, *, pending: Pending, limit: int, paths: frozenset[str]
    ) -> None:
        self.app = app
        self.pending = pending
        self.limit = limit
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if self.pending.count >= self.limit:
            error = OverloadedError(
                f"{self.pending.count} requests are in progress, the limit is {self.limit}; "
                "retry shortly"
            )
            await response_for(error)(scope, receive, send)
            return
        path = scope["path"]
        self.pending.enter(path)
        try:
            await self.app(scope, receive, send)
        finally:
            self.pending.leave(path)
