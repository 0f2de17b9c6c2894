"""/metrics and the access log, on real servers: the counts match the requests made, with
one worker and summed over several, and the access log never writes the text unless
asked."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import copy_checkpoint
from .serving import Server

pytestmark = [pytest.mark.slow, pytest.mark.server]  # real server processes


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, alphabet_dir: Path, notes_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("metrics") / "checkpoints"
    copy_checkpoint(alphabet_dir, root / "alphabet")
    copy_checkpoint(notes_dir, root / "notes")
    return root


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels."""
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def one(root: Path) -> Iterator[Server]:
    s = Server(root)
    yield s
    s.stop()


def test_one_worker_counts_what_it_answered(one: Server) -> None:
    before = scrape(one.url)
    with httpx.Client(base_url=one.url) as c:
        for text in ("ab", "abc", "abcd"):
            assert c.post("/predict", json={"model": "alphabet", "text": text}).status_code == 200
        assert c.post("/predict", json={"model": "alphabet", "text": "ab!"}).status_code == 422
        assert c.get("/no/such/route").status_code == 404
        assert c.get("/models/alphabet").status_code == 200
        gen = c.post("/generate", json={"model": "notes", "prompt": "The", "length": 50, "seed": 1})
        assert gen.status_code == 200
    after = scrape(one.url)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("charlm_requests_total", route="/predict", status="200") == 3
    assert grew("charlm_requests_total", route="/predict", status="422") == 1
    assert grew("charlm_requests_total", route="other", status="404") == 1
    assert grew("charlm_requests_total", route="/models/{name}", status="200") == 1
    assert grew("charlm_request_duration_seconds_count", route="/predict") == 4
    assert grew("charlm_request_duration_seconds_sum", route="/predict") > 0
    assert grew("charlm_predict_batch_size_sum") == 3  # the calls, however they were batched
    assert grew("charlm_generated_characters_total") == 50
    assert value(after, "charlm_models_loaded") == 2
    assert value(after, "charlm_requests_in_progress") == 0
    memory = [v for (n, _), v in after.items() if n == "charlm_process_resident_memory_bytes"]
    assert len(memory) == 1 and memory[0] > 50e6


def test_several_workers_are_summed(root: Path) -> None:
    s = Server(root, "--workers", "2")
    try:
        for _ in range(20):  # a new connection each: the kernel spreads them over the workers
            r = httpx.post(s.url + "/predict", json={"model": "alphabet", "text": "abc"})
            assert r.status_code == 200
        seen = set()
        for _ in range(6):
            samples = scrape(s.url)
            assert value(samples, "charlm_requests_total", route="/predict", status="200") == 20
            pids = {
                dict(k)["pid"] for (n, k) in samples if n == "charlm_process_resident_memory_bytes"
            }
            seen |= pids
            assert value(samples, "charlm_models_loaded") == 2
        assert len(seen) == 2  # both workers' memory is listed
        # /health counts the whole server too, whichever worker answers.
        gen = httpx.post(s.url + "/generate", json={"model": "notes", "prompt": "A", "length": 30})
        assert gen.status_code == 200
        for _ in range(6):
            h = httpx.get(s.url + "/health").json()
            assert h["predict_batches"]["requests"] == 20
            assert 1 <= h["predict_batches"]["batches"] <= 20
            assert h["generation"]["generations"] == 1 and h["generation"]["characters"] == 30
            assert h["generation"]["active"] == 0 and h["pending"] == 0
            assert h["models"] == ["alphabet", "notes"]
    finally:
        s.stop()


def test_the_access_log_is_json_without_the_text(root: Path) -> None:
    for flags, shows in ((["--access-log"], False), (["--access-log", "--access-log-text"], True)):
        s = Server(root, *flags)
        try:
            r = httpx.post(s.url + "/predict", json={"model": "alphabet", "text": "secretabc"})
            assert r.status_code == 200
            bad = httpx.post(s.url + "/predict", json={"model": "alphabet", "text": "x!"})
            assert bad.status_code == 422
            time.sleep(0.3)
        finally:
            s.stop()
        lines = [json.loads(x) for x in s.log.read_text().splitlines() if x.startswith("{")]
        ok = next(x for x in lines if x["route"] == "/predict" and x["status"] == 200)
        assert ok["method"] == "POST" and ok["model"] == "alphabet" and ok["client"] == "127.0.0.1"
        assert ok["request_bytes"] == len(r.request.content) and ok["response_bytes"] == len(
            r.content
        )
        assert ok["duration_ms"] > 0
        assert any(x["status"] == 422 for x in lines)
        assert ("secretabc" in s.log.read_text()) is shows
        if shows:
            assert ok["text"] == "secretabc"


def test_ready_for_a_load_balancer(root: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for where, status in ((empty, 503), (root, 200)):
        s = Server(where, "--api-key", "k" * 24)
        try:
            r = httpx.get(s.url + "/ready")  # no key: a probe need not hold one
            assert r.status_code == status, r.text
            if status == 200:
                assert r.json() == {"status": "ready", "models": ["alphabet", "notes"]}
            else:
                assert r.json()["error"]["type"] == "no_model"
        finally:
            s.stop()


def worker_pids(url: str) -> set[int]:
    """The worker processes a scrape lists (each has a memory series)."""
    samples = scrape(url)
    return {
        int(dict(k)["pid"]) for (n, k) in samples if n == "charlm_process_resident_memory_bytes"
    }


def test_a_killed_worker_leaves_the_live_counts(root: Path) -> None:
    """SIGKILL one of two workers while requests are in flight: each request in flight,
    and one sent right after, is answered or fails at once (never waits), and soon the
    idle server counts nothing in progress and lists no series of the dead worker."""
    s = Server(root, "--workers", "2")
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            workers |= worker_pids(s.url)  # each scrape is answered by either worker
        assert len(workers) == 2 and s.proc.pid not in workers, workers
        victim = min(workers)
        slow = {"model": "notes", "text": "The " * 100, "continuation_length": 1000}

        def call(body: dict[str, object], timeout: float = 30) -> str:
            try:
                return str(httpx.post(s.url + "/predict", json=body, timeout=timeout).status_code)
            except httpx.TimeoutException:
                return "timed out"
            except httpx.TransportError:
                return "failed at once"  # the connection was reset: the worker is gone

        with ThreadPoolExecutor(8) as pool:
            in_flight = [pool.submit(call, slow) for _ in range(8)]  # spread over both
            time.sleep(0.5)
            os.kill(victim, signal.SIGKILL)
            after = call({"model": "alphabet", "text": "abc"}, timeout=10)
            outcomes = [f.result() for f in in_flight]
        assert after in ("200", "failed at once")  # never left waiting
        assert set(outcomes) <= {"200", "failed at once"}, outcomes
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pending = httpx.get(s.url + "/health").json()["pending"]
            listed = worker_pids(s.url)
            if pending == 0 and victim not in listed:
                break
            time.sleep(0.2)
        assert pending == 0, "the dead worker's requests are still counted in progress"
        assert victim not in listed, "the dead worker's memory is still listed"
        samples = scrape(s.url)
        assert value(samples, "charlm_requests_in_progress") == 0
    finally:
        s.stop()
