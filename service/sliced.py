"""Long answers, made in pieces on the compute thread and dropped when their client goes.

`answer(request, job)` runs a computation in pieces (`charlm.slices`) on the compute
thread, which interleaves it with every other request (service/compute.py), and returns
its result. If the client disconnects first, the computation is closed after the piece
in progress and `ClientGone` is raised: the service then writes a 499 to nobody, which
the access log and the metrics record. `until_gone` does the same for any awaitable (a
/predict waiting for its batch).

The JSON of the longest answers is written here as their pieces come, a few dozen
positions at a time, as `Fragments`: the answer's text in order, never joined into one
string. So neither the compute thread nor the event loop spends more than a piece on
any one request, an answer never exists whole as Python objects, and `respond` sends
the fragments as they are, in chunks of about `CHUNK` bytes: `score_json` (/score,
/report), `logprobs_json` (/v1/completions) and `result_json` (a result whose list
field is long, such as /activations' series).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Generator, Iterable
from typing import Any, TypeAlias, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python
from starlette.types import Receive

from charlm import ScoreResult
from charlm.inference.logprobs import TokenLogprobs
from charlm.inference.results import ScoreStep
from charlm.slices import Sliced

from .compute import ComputeThread

__all__ = [
    "CHUNK",
    "ClientGone",
    "Fragments",
    "answer",
    "array",
    "escaped_json",
    "json_bytes",
    "json_of",
    "logprobs_json",
    "obj",
    "respond",
    "result_json",
    "score_json",
    "until_gone",
]

T = TypeVar("T")

Fragments: TypeAlias = list[bytes]
"""A JSON text in order, in pieces (joined, they are the text)."""

CHUNK = 1 << 18
"""Bytes an answer is sent in at a time."""


class ClientGone(Exception):
    """The client disconnected before its answer was ready; the work has stopped."""


async def answer(request: Request, job: Generator[None, None, T]) -> T:
    """`job`'s result, computed in pieces on the compute thread; `ClientGone` (and the
    job closed) if the client disconnects first."""
    cpu: ComputeThread = request.app.state.compute
    return await until_gone(request, cpu.run_sliced(job))


async def until_gone(request: Request, awaitable: Awaitable[T]) -> T:
    """What `awaitable` gives; cancelled, and `ClientGone` raised, if the client
    disconnects first."""
    work = asyncio.ensure_future(awaitable)
    gone = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():
            work.cancel()  # the compute thread closes the job after its current piece
    if work.done() and not work.cancelled():
        return work.result()
    raise ClientGone


async def _disconnected(receive: Receive) -> None:
    """Returns when the client disconnects (the request's body has been read: the
    server's next message is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def respond(
    fragments: Fragments,
    media_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """The answer whose text is `fragments`, sent in chunks of about `CHUNK` bytes."""
    return StreamingResponse(_chunks(fragments), media_type=media_type, headers=headers)


async def _chunks(fragments: Fragments) -> AsyncIterator[bytes]:
    chunk: list[bytes] = []
    size = 0
    for fragment in fragments:
        chunk.append(fragment)
        size += len(fragment)
        if size >= CHUNK:
            yield b"".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield b"".join(chunk)


def _items(values: Iterable[object]) -> bytes:
    """The JSON of a list's items, without the brackets (b"" for none)."""
    return json_bytes(list(values))[1:-1]


def array(runs: Iterable[Fragments]) -> Fragments:
    """A JSON array of `runs`: each the text of one or more of its items, comma-separated
    (an empty run adds nothing)."""
    out = [b"["]
    for run in runs:
        if any(run):
            if len(out) > 1:
                out.append(b",")
            out += run
    out.append(b"]")
    return out


def obj(head: bytes, fields: dict[str, Fragments]) -> Fragments:
    """The JSON object whose text is `head`, with `fields` (name: the value's text)
    added at its end."""
    out = [head[:-1]]
    comma = head.strip() != b"{}"
    for name, value in fields.items():
        out += [b"," if comma else b"", json_bytes(name), b":", *value]
        comma = True
    out.append(b"}")
    return out


def score_json(pieces: Generator[list[ScoreStep], None, ScoreResult]) -> Sliced[Fragments]:
    """A /score answer from `Predictor.score_pieces`, written as it comes."""
    runs: list[Fragments] = []
    while True:
        try:
            steps = next(pieces)
        except StopIteration as done:
            result: ScoreResult = done.value
            break
        runs.append([_items(steps)])
        yield
    head = json_of(result, exclude={"steps"})
    return obj(head, {"steps": array(runs)})


def logprobs_json(pieces: Iterable[TokenLogprobs], shift: int = 0) -> Sliced[Fragments]:
    """One choice's `logprobs` from `logprob_pieces`, each character's offset less
    `shift` (where the choice's text starts), written as it comes."""
    fields: dict[str, list[Fragments]] = {
        "tokens": [],
        "token_logprobs": [],
        "top_logprobs": [],
        "text_offset": [],
    }
    for piece in pieces:
        fields["tokens"].append([_items(piece.tokens)])
        fields["token_logprobs"].append([json_bytes(piece.token_logprobs)[1:-1]])
        fields["top_logprobs"].append([json_bytes(piece.top_logprobs)[1:-1]])
        fields["text_offset"].append([_items(o - shift for o in piece.text_offset)])
        yield
    return obj(b"{}", {name: array(runs) for name, runs in fields.items()})


def json_bytes(value: object) -> bytes:
    """`value` as compact JSON text, written by pydantic's serializer, with NaN and
    infinities as null, as charlm's results write them; a value holding a lone surrogate
    (a character a client sent, echoed back), which that serializer refuses, is written
    by `escaped_json` instead."""
    try:
        return to_json(value, inf_nan_mode="null")
    except PydanticSerializationError:
        return escaped_json(to_jsonable_python(value, inf_nan_mode="null"))


def result_json(result: BaseModel, field: str) -> Sliced[Fragments]:
    """`result`, its list `field` written an item per piece."""
    runs: list[Fragments] = []
    for item in getattr(result, field):
        runs.append([json_bytes(item)])
        yield
    head = json_of(result, exclude={field})
    return obj(head, {field: array(runs)})


def json_of(result: BaseModel, exclude: set[str] | None = None) -> bytes:
    """`result`'s JSON text, written by pydantic's own serializer (as `model_dump_json`
    writes it), without the fields in `exclude`. That serializer refuses a string holding
    a lone surrogate (an unknown character a client sent, which the answer lists), so
    such a result is written by `escaped_json` instead."""
    try:
        return result.__pydantic_serializer__.to_json(result, exclude=exclude)
    except PydanticSerializationError:
        return escaped_json(result.model_dump(mode="json", exclude=exclude))


def escaped_json(content: Any) -> bytes:
    """Plain Python `content` as compact JSON in UTF-8, a lone surrogate in a string
    written as a JSON escape (UTF-8 cannot carry one)."""
    text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")
