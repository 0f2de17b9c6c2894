"""What an operator scrapes: `GET /metrics` in Prometheus's text format (prometheus-client).

    charlm_requests_total{route, status}        requests answered
    charlm_request_duration_seconds{route}      from the first byte in to the last byte out
    charlm_predict_batch_size                   /predict calls per batched pass
    charlm_generated_characters_total           characters made for /generate and /v1
    charlm_requests_in_progress                 inference requests running or waiting
    charlm_models_loaded                        models the server holds
    charlm_process_resident_memory_bytes{pid}   each worker process's resident memory

With `charlm serve --workers N` (N > 1) the parent gives the workers one directory
(`PROMETHEUS_MULTIPROC_DIR`, prometheus-client's multiprocess mode): every worker writes
its values there, and whichever worker answers a scrape reads them all, so a scrape sees
the whole server. Counters and histograms add up over the workers; requests in progress
sum over the live ones; models loaded is the largest any worker holds; memory is listed
per worker. A worker leaves the live sums and the memory list when it stops, or, killed,
when the parent collects its exit status (service/supervisor.py). A `route` is the
route's path as declared (`/models/{name}`), or `other`, so that a client cannot grow the
number of series.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "BATCH",
    "CONTENT_TYPE_LATEST",
    "GENERATED",
    "MODELS",
    "MULTIPROC_DIR",
    "PENDING",
    "RequestMetrics",
    "exposition",
    "note_memory",
    "process_ended",
    "route_name",
    "server_counts",
]

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "charlm_requests_total", "HTTP requests answered, by route and status.", ["route", "status"]
)
LATENCY = Histogram(
    "charlm_request_duration_seconds",
    "Time from a request's arrival to its answer's last byte, by route.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BATCH = Histogram(
    "charlm_predict_batch_size",
    "/predict calls answered by one batched pass of the model.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
GENERATED = Counter(
    "charlm_generated_characters_total", "Characters generated for /generate and /v1 calls."
)
BATCH_LARGEST = Gauge(
    "charlm_predict_batch_largest", "Most /predict calls in one pass.", multiprocess_mode="max"
)
GEN_STARTED = Counter("charlm_generations_total", "Generations started (/generate and /v1).")
GEN_STEPS = Counter("charlm_generation_steps_total", "Batched model steps taken for them.")
GEN_ACTIVE = Gauge(
    "charlm_generations_in_progress", "Generations in progress.", multiprocess_mode="livesum"
)
GEN_LARGEST = Gauge(
    "charlm_generation_batch_largest",
    "Most generations advanced by one step.",
    multiprocess_mode="max",
)
PENDING = Gauge(
    "charlm_requests_in_progress",
    "Inference requests running or waiting.",
    multiprocess_mode="livesum",
)
MODELS = Gauge("charlm_models_loaded", "Models the server holds.", multiprocess_mode="livemax")
MEMORY = Gauge(
    "charlm_process_resident_memory_bytes",
    "Resident memory of each server process.",
    multiprocess_mode="liveall",
)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def note_memory() -> None:
    """Record this process's resident memory (Linux; elsewhere nothing)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return
    MEMORY.set(pages * _PAGE)


def exposition() -> bytes:
    """Every metric of the server, as the text a scrape reads."""
    note_memory()
    if os.environ.get(MULTIPROC_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def server_counts() -> dict[str, Any] | None:
    """With several worker processes, the whole server's counts that /health reports
    (each summed or the largest, as its metric says); None in a single process, whose
    own counts are the server's."""
    if not os.environ.get(MULTIPROC_DIR):
        return None
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    t: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            if not sample.labels:
                t[sample.name] = t.get(sample.name, 0.0) + sample.value

    def n(name: str) -> int:
        return int(t.get(name, 0))

    return {
        "pending": n("charlm_requests_in_progress"),
        "predict_batches": {
            "batches": n("charlm_predict_batch_size_count"),
            "requests": n("charlm_predict_batch_size_sum"),
            "largest": n("charlm_predict_batch_largest"),
        },
        "generation": {
            "active": n("charlm_generations_in_progress"),
            "generations": n("charlm_generations_total"),
            "steps": n("charlm_generation_steps_total"),
            "characters": n("charlm_generated_characters_total"),
            "largest": n("charlm_generation_batch_largest"),
        },
    }


def process_ended() -> None:
    """A worker is stopping: its live gauges leave the sums."""
    if os.environ.get(MULTIPROC_DIR):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def route_name(scope: Scope) -> str:
    """The route a request matched, as declared (`/models/{name}`), or `other`."""
    return getattr(scope.get("route"), "path", None) or "other"


class RequestMetrics:
    """ASGI middleware: counts every HTTP request by route and status, and times it until
    its answer's last byte (a stream's too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            name = route_name(scope)
            REQUESTS.labels(name, str(status)).inc()
            LATENCY.labels(name).observe(time.perf_counter() - start)
