"""What one request may ask for, and how many may be in progress at once.

`check_limits` compares a request's sizes with the server's caps, `check_items` those of
an /accuracy request (how many items, and each one's prompt and answer), `check_choices`
a /v1/completions request's prompts and choices, and `check_scored` the characters a
request has the model score; each refusal names the flag that raises its cap. `Admission`
is ASGI middleware that counts inference requests from arrival until their last byte is
sent (streams included) and answers 503 at once when `max_pending` are already in
progress, so overload never builds an unbounded queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

from charlm import LimitExceededError, OverloadedError, TextTooLongError, TooManyItemsError
from charlm.flags import flag_for

from .errors import response_for
from .metrics import PENDING
from .settings import ServiceSettings

__all__ = ["Admission", "Pending", "check_choices", "check_items", "check_limits", "check_scored"]


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
        raise TextTooLongError(
            len(text), settings.max_text_chars, what=what, flag=flag_for("max_text_chars")
        )
    caps = (
        ("continuation_length", continuation, "max_continuation"),
        ("length", length, "max_generate_length"),
        ("alternatives", alternatives, "max_alternatives"),
    )
    for name, value, cap in caps:
        _cap(settings, name, value, cap, LimitExceededError)


def check_items(settings: ServiceSettings, items: Sequence[tuple[str, str]]) -> None:
    """(prompt, answer) pairs: at most `max_accuracy_items` of them (413 above), each
    prompt and answer within `max_text_chars` together, each answer (the greedy
    continuation read for it) within `max_continuation`, and all of them within
    `max_scored_chars`."""
    _cap(settings, "items", len(items), "max_accuracy_items")
    for n, (prompt, answer) in enumerate(items, 1):
        check_limits(settings, text=prompt + answer, what=f"item {n}'s prompt and answer")
        _cap(
            settings,
            f"item {n}'s answer length",
            len(answer),
            "max_continuation",
            LimitExceededError,
        )
    check_scored(settings, sum(len(p) + len(a) for p, a in items))


def check_choices(settings: ServiceSettings, prompts: int, n: int) -> None:
    """A /v1/completions request's prompts, and its choices (prompts times n)."""
    _cap(settings, "prompts", prompts, "max_prompts")
    _cap(settings, "choices (prompts times n)", prompts * n, "max_choices")


def check_scored(settings: ServiceSettings, chars: int) -> None:
    """The characters one request has the model score or read (413 over the cap)."""
    _cap(settings, "characters to score", chars, "max_scored_chars")


def _cap(
    settings: ServiceSettings,
    name: str,
    value: int,
    cap: str,
    error: type[LimitExceededError] = TooManyItemsError,
) -> None:
    """Refuse `value` over the setting `cap`, naming the flag that raises it: a request
    too large (413, TooManyItemsError) or one asking for too much (422)."""
    limit = getattr(settings, cap)
    if value > limit:
        raise error(name, value, limit, flag=flag_for(cap))


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
