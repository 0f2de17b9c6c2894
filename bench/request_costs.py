"""What parts of a /predict request cost the event loop: its answer's JSON by encoder,
its body by decoder, and each ASGI layer it passes.

    python bench/request_costs.py [--repeats 7] [--no-write]

The server writes each answer with pydantic's own serializer (`service.sliced.json_of`)
and FastAPI reads each body with the json module, then validates the dict. Measured
here, in one process, on the answers a 2 x 256 model gives to texts of 2 and of 70
characters cut from notes.txt (top 5, no continuation, as bench/serve.py sends them):

- encoders: pydantic's serializer on the model (what `charlm serve` does); orjson and
  msgspec on the model's `model_dump()` (what either would need, the dump included);
- decoders: `json.loads` and `model_validate` of the dict (what FastAPI does);
  pydantic's `model_validate_json` on the bytes; orjson's `loads` and `model_validate`.

orjson and msgspec are not dependencies of charlm: a row for either is measured only
where it is installed (`pip install orjson msgspec`). Each figure is the median over
`--repeats` rounds of 2,000 calls per answer, the encoders and decoders interleaved in
each round; every encoder's bytes are checked to parse to the same value.

The layers: an ASGI app that answers at once, called on uvloop with no layer around it,
with one, and with seven (as many as `charlm serve` has), each layer shaped like
charlm's (service/app.py): a pure-ASGI class that wraps `send` to see the answer go
by. What seven cost beyond one is what folding them into one layer could save at most.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import REPO, report
from serve import train_model

from charlm_service.schemas import PredictRequest

CALLS = 2_000


def per_call_us(fn: Callable[[Any], object], arg: object) -> float:
    t0 = time.perf_counter()
    for _ in range(CALLS):
        fn(arg)
    return (time.perf_counter() - t0) / CALLS * 1e6


class _Answer:
    """The innermost app: a 200 with a short body."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


class _Layer:
    """A pure-ASGI layer that watches the answer go by, as charlm's layers do."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        status = 0

        async def watched(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watched)


def layered_us(layers: int) -> float:
    """µs per request through `layers` layers around `_Answer`, on uvloop."""
    app: Any = _Answer()
    for _ in range(layers):
        app = _Layer(app)
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    async def calls() -> float:
        t0 = time.perf_counter()
        for _ in range(CALLS):
            await app(scope, receive, send)
        return (time.perf_counter() - t0) / CALLS * 1e6

    uvloop: Any = importlib.import_module("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(calls())


LAYERS = (0, 1, 7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    from charlm.inference import Predictor

    notes = (REPO / "corpora" / "notes.txt").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        predictor = Predictor.from_checkpoint(train_model(Path(tmp)) / "m")
    texts = {"2 characters": notes[31:33], "70 characters": notes[31:101]}
    answers = {label: predictor.predict(text, top_k=5) for label, text in texts.items()}
    bodies = {
        label: json.dumps({"model": "m", "text": t, "top_k": 5}).encode()
        for label, t in texts.items()
    }

    encoders: dict[str, Callable[[Any], bytes]] = {
        "pydantic serializer (charlm serve)": lambda a: a.__pydantic_serializer__.to_json(a),
    }
    decoders: dict[str, Callable[[bytes], object]] = {
        "json.loads + model_validate (FastAPI)": lambda b: PredictRequest.model_validate(
            json.loads(b)
        ),
        "model_validate_json": PredictRequest.model_validate_json,
    }
    missing, found = [], []
    try:
        orjson: Any = importlib.import_module("orjson")
        found.append(f"orjson {orjson.__version__}")
        encoders["orjson of model_dump()"] = lambda a: orjson.dumps(a.model_dump())
        decoders["orjson.loads + model_validate"] = lambda b: PredictRequest.model_validate(
            orjson.loads(b)
        )
    except ImportError:
        missing.append("orjson")
    try:
        msgspec: Any = importlib.import_module("msgspec")
        found.append(f"msgspec {msgspec.__version__}")
        encoders["msgspec of model_dump()"] = lambda a: msgspec.json.encode(a.model_dump())
    except ImportError:
        missing.append("msgspec")

    for label, answer in answers.items():  # the same value, whichever wrote it
        expected = json.loads(answer.model_dump_json())
        for name, encode in encoders.items():
            assert json.loads(encode(answer)) == expected, (name, label)

    times: dict[tuple[str, str], list[float]] = {}
    layer_times: dict[int, list[float]] = {}
    for _ in range(args.repeats):
        for n in LAYERS:
            layer_times.setdefault(n, []).append(layered_us(n))
        for label in texts:
            for name, encode in encoders.items():
                times.setdefault((name, label), []).append(per_call_us(encode, answers[label]))
            for name, decode in decoders.items():
                times.setdefault((name, label), []).append(per_call_us(decode, bodies[label]))

    rows = []
    for kind, names in (("answer", list(encoders)), ("request body", list(decoders))):
        first = names[0]
        for name in names:
            cells = []
            for label in texts:
                us = statistics.median(times[name, label])
                base = statistics.median(times[first, label])
                cells.append(f"{us:.1f} µs ({us / base:.2f}x)")
            rows.append(f"| {kind} | {name} | {' | '.join(cells)} |")
    layers = {n: statistics.median(t) for n, t in layer_times.items()}
    for n in LAYERS:
        rows.append(
            f"| a request, through | {n} ASGI layer(s) | {layers[n]:.1f} µs "
            f"({layers[n] - layers[0]:+.1f} µs for the layers) | |"
        )
    sizes = ", ".join(
        f"{label}: answer {len(answers[label].model_dump_json()):,} bytes" for label in texts
    )
    table = (
        "| part | done by | 2-character text | 70-character text |\n|---|---|---|---|\n"
        + "\n".join(rows)
    )
    notes_text = (
        f"`python bench/request_costs.py --repeats {args.repeats}`: median µs per call over "
        f"{args.repeats} rounds of {CALLS:,} calls, one thread; the ratio is to the first "
        f"row of its kind. {sizes}. "
        + (f"Not installed, so not measured: {', '.join(missing)}. " if missing else "")
        + (f"Installed beside charlm: {', '.join(found)}." if found else "")
    )
    report(
        "What parts of a /predict request cost the event loop",
        table,
        notes_text,
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
