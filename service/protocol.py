"""The HTTP/1.1 protocol `charlm serve` runs: uvicorn's httptools one, refusing in JSON.

httptools (llhttp, the parser of Node.js) parses a request in C: on uvloop it answered
about twice the requests a second that uvicorn's pure-Python parser (h11) on asyncio
did, on an endpoint that does nothing (bench/serve.py, BENCHMARKS.md). llhttp refuses a
malformed request itself, before any application code runs, and uvicorn then answers 400
with a line of plain text. Here the refusal is charlm's JSON error instead, naming what
llhttp found, like every other error the service gives: a request with both
`Content-Length` and `Transfer-Encoding` is `ambiguous_body_length` (the same answer
`BodyFraming` gives under another parser), any other is `bad_request`. The connection is
closed either way, as uvicorn closes it.
"""

from __future__ import annotations

import sys

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .body import AMBIGUOUS_LENGTH
from .errors import error_response
from .guard import EVERY_ANSWER

__all__ = ["PROTOCOL", "JSONRefusals", "refusal"]

PROTOCOL = "charlm_service.protocol:JSONRefusals"
"""uvicorn's `http` setting for it (an import string, so that workers import it too)."""


def refusal(problem: str, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole 400 answer, after `headers` (the server's own: date, server), to a
    request llhttp refused with `problem`; with the headers `Guard` gives every answer."""
    words = problem.lower()
    if "content-length" in words and "transfer-encoding" in words:
        kind, message = "ambiguous_body_length", AMBIGUOUS_LENGTH
    else:
        kind, message = "bad_request", f"the request is not valid HTTP/1.1: {problem}"
    answer = error_response(400, kind, message, {"Connection": "close"})
    lines = [b"HTTP/1.1 400 Bad Request"]
    every = [*headers, *answer.raw_headers, *EVERY_ANSWER]
    lines += [name + b": " + value for name, value in every]
    return b"\r\n".join(lines) + b"\r\n\r\n" + answer.body


class JSONRefusals(HttpToolsProtocol):
    """uvicorn's httptools protocol, with its refusals in charlm's JSON error shape."""

    def send_400_response(self, msg: str) -> None:
        # uvicorn calls this while it handles the parser's error: the error says what.
        error = sys.exception()
        problem = str(error) if isinstance(error, httptools.HttpParserError) else msg
        headers = list(self.server_state.default_headers)
        self.transport.write(refusal(problem.rstrip("."), headers))
        self.transport.close()
