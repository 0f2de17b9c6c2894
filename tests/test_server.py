"""End to end: a real `charlm serve` (uvicorn) process on a loopback port."""

import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from charlm.cli import main

from .conftest import CORPORA, copy_checkpoint
from .serving import Server
from .test_service import BAD_REQUESTS

pytestmark = [pytest.mark.slow, pytest.mark.server]  # real server processes

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def server_dir(
    tmp_path_factory: pytest.TempPathFactory, alphabet_dir: Path, notes_dir: Path
) -> Path:
    root = tmp_path_factory.mktemp("e2e") / "checkpoints"
    copy_checkpoint(alphabet_dir, root / "alphabet")
    copy_checkpoint(notes_dir, root / "notes")
    return root


@pytest.fixture(scope="module")
def server(server_dir: Path) -> Iterator[Server]:
    s = Server(
        server_dir,
        "--max-generate-length",
        "1000000000",
        "--max-text-chars",
        "500",
        "--max-continuation",
        "300",
    )
    yield s
    s.stop()


def test_every_endpoint(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/health").json()["models"] == ["alphabet", "notes"]
        assert [m["name"] for m in c.get("/models").json()["models"]] == ["alphabet", "notes"]
        card = c.get("/models/alphabet").json()
        assert card["name"] == "alphabet" and card["vocab_size"] == 26
        diagnosis = card["training"]["diagnosis"]
        assert diagnosis["healthy"] is True and diagnosis["findings"] == []
        assert diagnosis["unigram_level"] == pytest.approx(math.log(26))
        r = c.get("/models/nothing")
        assert r.status_code == 404 and r.json()["error"]["type"] == "unknown_model"
        body = c.post(
            "/predict", json={"model": "alphabet", "text": "abc", "continuation_length": 100}
        ).json()
        assert body["next"][0]["char"] == "d" and body["next"][0]["prob"] >= 0.999
        assert body["continuation"] == (LETTERS[3:] + LETTERS * 4)[:100]
        score = c.post("/score", json={"model": "alphabet", "text": LETTERS * 2}).json()
        assert score["min_prob"] >= 0.999 and len(score["steps"]) == 51
        gen = c.post(
            "/generate", json={"model": "alphabet", "prompt": "k", "length": 30, "temperature": 0}
        ).json()
        assert gen["text"] == (LETTERS[11:] + LETTERS)[:30]
        r = c.post("/predict", json={"model": "../notes", "text": "a"})
        assert r.status_code == 422 and r.json()["error"]["type"] == "model_name"
        r = c.post("/predict", content=b"{oops", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["type"] == "malformed_json"
        assert c.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "status", "kind", "fragment"),
    [case for case in BAD_REQUESTS if "length" not in case[1]],
)
def test_bad_requests_over_real_http(
    server: Server, path: str, body: Any, status: int, kind: str, fragment: str
) -> None:
    r = httpx.post(server.url + path, json=body, timeout=30)
    error = json.loads(r.text)["error"]
    assert (r.status_code, error["type"]) == (status, kind) and fragment in error["message"]


def read_events(lines: Iterator[str], limit: int | None = None) -> list[tuple[str, Any]]:
    """Parse SSE events from `lines` (keep the iterator: dropping it closes the stream)."""
    events: list[tuple[str, Any]] = []
    kind, data = "message", ""
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            events.append((kind, json.loads(data)))
            kind, data = "message", ""
            if limit is not None and len(events) >= limit:
                break
    return events


def test_sse_streams_characters_as_they_are_made(server: Server) -> None:
    body = {"model": "notes", "prompt": "the ", "length": 300, "seed": 4}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        plain = c.post("/generate", json=body).json()["text"]
        with c.stream("POST", "/generate", json={**body, "stream": True}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            events = read_events(r.iter_lines())
    chars = [d["char"] for kind, d in events if kind == "message"]
    assert "".join(chars) == plain and events[-1][0] == "done" and events[-1][1]["text"] == plain


def pending(server: Server) -> int:
    return int(httpx.get(server.url + "/health").json()["pending"])


def wait_until_idle(server: Server, limit_s: float = 60) -> int:
    """Pending requests once the server has none left, or when `limit_s` runs out
    (a generous bound for a busy machine; the assertion is on the count, not the time)."""
    deadline = time.monotonic() + limit_s
    while pending(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    return pending(server)


def test_disconnect_stops_generation_and_long_streams_do_not_stall_predict(server: Server) -> None:
    body = {"model": "notes", "prompt": "a", "length": 2_000_000, "stream": True}
    with (
        httpx.Client(base_url=server.url, timeout=60) as c,
        c.stream("POST", "/generate", json=body) as r,
    ):
        lines = r.iter_lines()
        assert len(read_events(lines, limit=50)) == 50
        assert pending(server) == 1
        for _ in range(20):  # short calls while the long generation runs...
            resp = httpx.post(server.url + "/predict", json={"model": "alphabet", "text": "abc"})
            assert resp.json()["next"][0]["char"] == "d"
        # ...are all answered before it ends: it is still running, and still streaming.
        assert pending(server) == 1
        assert len(read_events(lines, limit=50)) == 50
    # The client has gone: the server stops generating (2,000,000 chars would take minutes).
    assert wait_until_idle(server) == 0


def test_abandoned_plain_generate_stops_and_frees_its_slot(server: Server) -> None:
    body = {"model": "notes", "prompt": "a", "length": 1_000_000_000}
    with contextlib.suppress(httpx.TimeoutException):
        httpx.post(server.url + "/generate", json=body, timeout=1.0)  # gives up long before
    assert wait_until_idle(server) == 0  # 10^9 characters would take hours
    r = httpx.post(server.url + "/predict", json={"model": "alphabet", "text": "abc"})
    assert r.json()["next"][0]["char"] == "d"


def health(server: Server) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(server.url + "/health").json()
    return body


def test_predict_is_answered_while_a_long_plain_generate_runs(server: Server) -> None:
    """A non-streaming /generate of 10^9 characters holds no thread between its steps."""
    body = json.dumps({"model": "notes", "prompt": "a", "length": 1_000_000_000}).encode()
    head = (
        f"POST /generate HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode() + body)
        deadline = time.monotonic() + 60
        while health(server)["generation"]["active"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert health(server)["generation"]["active"] == 1
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for _ in range(20):
                r = c.post("/predict", json={"model": "alphabet", "text": "abc"})
                assert r.json()["next"][0]["char"] == "d"
        assert health(server)["generation"]["active"] == 1  # answered while it ran
    assert wait_until_idle(server) == 0  # and the client's going stopped it


def test_concurrent_generations_share_batched_steps(server: Server) -> None:
    body = {"model": "notes", "prompt": "the ", "length": 2_000_000, "stream": True}
    before = health(server)["generation"]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        streams = [c.stream("POST", "/generate", json={**body, "seed": i}) for i in range(4)]
        lines = [s.__enter__().iter_lines() for s in streams]
        try:
            for _ in range(2):  # all four are running after the first round
                for it in lines:
                    assert len(read_events(it, limit=20)) == 20
            during = health(server)["generation"]
        finally:
            for s in streams:
                s.__exit__(None, None, None)
    assert during["active"] == 4 and during["largest"] >= 4
    made = during["characters"] - before["characters"]
    assert during["steps"] - before["steps"] < made  # several characters per step
    assert wait_until_idle(server) == 0


def test_concurrent_calls_match_sequential_ones(server: Server) -> None:
    texts = ["the ", "a bird", "rain on the ", "seed", "wood", "t", "I went out to"]
    requests = (
        [
            ("/predict", {"model": "notes", "text": t, "continuation_length": 15, "top_k": 0})
            for t in texts
        ]
        + [("/score", {"model": "notes", "text": t + "and"}) for t in texts]
        + [
            (
                "/predict",
                {"model": "alphabet", "text": LETTERS[i:] + "a", "continuation_length": 26},
            )
            for i in range(10)
        ]
        + [
            ("/generate", {"model": "notes", "prompt": t, "length": 40, "seed": i})
            for i, t in enumerate(texts)
        ]
    )
    with httpx.Client(base_url=server.url, timeout=60) as c:
        sequential = [c.post(p, json=b).json() for p, b in requests]
        with ThreadPoolExecutor(max_workers=16) as pool:
            for _ in range(2):
                concurrent = list(pool.map(lambda pb: c.post(pb[0], json=pb[1]).json(), requests))
                assert_same_answers(concurrent, sequential)


def assert_same_answers(got: Any, want: Any, where: str = "answer") -> None:
    """Equal, except that probabilities may differ by float32 rounding (1e-5): a batched
    forward pass may add up in another order than a single one."""
    if isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-5), where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            assert_same_answers(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_answers(g, w, f"{where}[{i}]")
    else:
        assert got == want, where


def test_concurrent_predict_calls_are_batched_and_answer_as_if_alone(server_dir: Path) -> None:
    # A long wait bound makes sure calls meet in a batch even on a slow machine.
    batched = Server(server_dir, "--batch-wait-ms", "50", "--max-continuation", "300")
    words = ["the ", "a bird", "rain on the ", "seed", "wood", "t", "I went out to", "and"]
    bodies = [
        {
            "model": "notes",
            "text": w * (1 + i % 3),
            "continuation_length": (7 * i) % 40,
            "top_k": i % 6,
            "alternatives": i % 4,
        }
        for i, w in enumerate(words * 4)
    ] + [{"model": "alphabet", "text": LETTERS[i:], "continuation_length": 30} for i in range(8)]
    try:
        with httpx.Client(base_url=batched.url, timeout=60) as c:
            alone = [c.post("/predict", json=b).json() for b in bodies]
            before = c.get("/health").json()["predict_batches"]
            assert before["largest"] == 1 and before["requests"] == len(bodies)
            with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
                together = list(pool.map(lambda b: c.post("/predict", json=b).json(), bodies))
            after = c.get("/health").json()["predict_batches"]
        assert_same_answers(together, alone)
        assert after["requests"] == 2 * len(bodies)
        assert after["largest"] > 1
        assert after["batches"] - before["batches"] < len(bodies)
    finally:
        batched.stop()


def test_overload_is_refused_quickly(server_dir: Path) -> None:
    small = Server(server_dir, "--max-pending", "2", "--max-generate-length", "2000000")
    try:
        body = {"model": "notes", "prompt": "a", "length": 2_000_000, "stream": True}
        with httpx.Client(base_url=small.url, timeout=30) as c:
            streams = [c.stream("POST", "/generate", json=body) for _ in range(2)]
            responses = [s.__enter__() for s in streams]
            assert all(r.status_code == 200 for r in responses)
            lines = [r.iter_lines() for r in responses]
            for it in lines:
                read_events(it, limit=1)
            refused = c.post("/predict", json={"model": "alphabet", "text": "abc"})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["type"] == "overloaded"
            assert "limit is 2" in refused.json()["error"]["message"]
            assert c.get("/health").status_code == 200  # health is never refused
            assert pending(small) == 2  # refused while both streams still run
            for s in streams:
                s.__exit__(None, None, None)
            assert wait_until_idle(small) == 0
            assert c.post("/predict", json={"model": "alphabet", "text": "abc"}).status_code == 200
    finally:
        small.stop()


def test_a_model_trained_while_serving_is_served(server: Server, server_dir: Path) -> None:
    rc = main(
        [
            "train",
            str(CORPORA / "ab.txt"),
            "--checkpoints-dir",
            str(server_dir),
            "--quiet",
            "--max-steps",
            "300",
        ]
    )
    assert rc == 0
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert "ab" in [m["name"] for m in c.get("/models").json()["models"]]
        body = c.post(
            "/predict", json={"model": "ab", "text": "abab", "continuation_length": 6}
        ).json()
        assert body["continuation"] == "ababab"


def test_several_workers(server_dir: Path) -> None:
    multi = Server(server_dir, "--workers", "2")
    try:
        with httpx.Client(base_url=multi.url, timeout=30) as c:
            # the free cores are shared among the workers, not claimed by each of them
            cores = len(os.sched_getaffinity(0))
            assert 1 <= c.get("/health").json()["threads"] <= max(1, cores // 2)
            for _ in range(6):
                assert (
                    c.post("/predict", json={"model": "alphabet", "text": "xy"}).json()["next"][0][
                        "char"
                    ]
                    == "z"
                )
    finally:
        multi.stop()
