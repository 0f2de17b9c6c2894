"""Who may talk to the service: Host names, the API key, a per-client rate, and the
headers every answer carries.

ASGI middleware, outermost. In order:

1. The `Host` header must name this server (`allowed_hosts`): a page on another site that
   rebinds its own DNS name to 127.0.0.1 sends its own name as Host, so it is refused
   (400) before reaching any route. `*` allows any name.
2. With an API key set, every route but /health and the inspector's static files (the
   page itself, its script and stylesheet: files identical for everyone, holding no
   data) needs `Authorization: Bearer <key>`; the key is compared in constant time. 401
   otherwise.
3. With a rate set, each client address may make that many requests per second on
   average (bursts of up to twice that); more get 429 with `Retry-After`.
4. Every answer gets `X-Content-Type-Options: nosniff` and `Referrer-Policy:
   no-referrer`; the inspector page also gets a content security policy that lets it
   load only its own script and stylesheet and talk only to this server, and may not be
   framed.
"""

from __future__ import annotations

import hmac
import math
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response

__all__ = ["EVERY_ANSWER", "LOCAL_HOSTS", "Guard", "allowed_hosts_for"]

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_OPEN_PATHS = ("/health", "/ready", "/", "/favicon.ico")
_OPEN_PREFIXES = ("/static/", "/assets/")
_PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
EVERY_ANSWER = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
"""The headers of every answer (service/protocol.py adds them to the parser's refusals)."""
_PAGE_HEADERS = [
    (b"content-security-policy", _PAGE_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


def allowed_hosts_for(bound: str, configured: list[str]) -> frozenset[str] | None:
    """The Host names to accept: `configured` if given (None for '*': any), else the
    localhost names and the bound address; None (any) when bound to every interface."""
    names = [h.strip().lower() for h in configured if h.strip()]
    if "*" in names:
        return None
    if names:
        return frozenset(names) | LOCAL_HOSTS
    if bound.strip("[]") in _WILDCARDS:
        return None
    return LOCAL_HOSTS | {bound.strip("[]").lower()}


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: frozenset[str] | None,
        api_key: str | None,
        rate: float | None,
    ) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.api_key = api_key.encode() if api_key else None
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = dict(scope.get("headers", []))
        extra = EVERY_ANSWER + (_PAGE_HEADERS if path == "/" else [])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        refusal = self._refusal(path, headers, scope)
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, path: str, headers: dict[bytes, bytes], scope: Scope) -> ASGIApp | None:
        if self.allowed_hosts is not None:
            host = _host_name(headers.get(b"host", b""))
            if host not in self.allowed_hosts:
                return error_response(
                    400,
                    "host_not_allowed",
                    "the Host header does not name this server; start it with "
                    "--allowed-hosts to accept other names",
                )
        preflight = scope.get("method") == "OPTIONS"  # a browser's CORS check carries no key
        if self.api_key is not None and not _is_open(path) and not preflight:
            given = headers.get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.api_key):
                return error_response(
                    401,
                    "unauthorized",
                    "this server needs its API key: send the header Authorization: Bearer <key>",
                    {"WWW-Authenticate": "Bearer"},
                )
        if self.rate is not None and path not in ("/health", "/ready"):
            client = scope.get("client")
            wait = self._take(client[0] if client else "?")
            if wait > 0:
                return error_response(
                    429,
                    "rate_limited",
                    f"more than {self.rate:g} requests per second from this client; retry shortly",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
        return None

    def _take(self, client: str) -> float:
        """Take one token from the client's bucket; 0, or the seconds until one is there."""
        assert self.rate is not None
        now = time.monotonic()
        capacity = max(1.0, 2 * self.rate)
        tokens, then = self._buckets.get(client, (capacity, now))
        tokens = min(capacity, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:  # forget the oldest clients rather than grow
            for stale in sorted(self._buckets, key=lambda c: self._buckets[c][1])[:50_000]:
                del self._buckets[stale]
        return 0.0


def _is_open(path: str) -> bool:
    return path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES)


def _host_name(raw: bytes) -> str:
    """The host part of a Host header, lower case, without port or IPv6 brackets."""
    host = raw.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
