"""Long requests against a real `charlm serve`: every one is capped, with a 413 that names
the cap and the flag that raises it; the choices of an echo share one computation; a
request whose client has gone stops."""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from .conftest import CORPORA, copy_checkpoint
from .serving import Server

pytestmark = [pytest.mark.slow, pytest.mark.server]  # real server processes

CAPS = ["--max-prompts", "3", "--max-choices", "4", "--max-scored-chars", "500"]
NOTES = (CORPORA / "notes.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory, notes_dir: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("capped") / "checkpoints"
    copy_checkpoint(notes_dir, root / "notes")
    s = Server(root, *CAPS)
    yield s
    s.stop()


def refused(server: Server, path: str, body: dict[str, object]) -> dict[str, object]:
    r = httpx.post(server.url + path, json=body, timeout=60)
    error: dict[str, object] = r.json()["error"]
    error["status"] = r.status_code
    return error


@pytest.mark.parametrize(
    ("path", "body", "status", "flag"),
    [
        ("/v1/completions", {"prompt": list("abcd"), "max_tokens": 1}, 413, "--max-prompts"),
        ("/v1/completions", {"prompt": ["a", "b"], "n": 3, "max_tokens": 1}, 413, "--max-choices"),
        (
            "/v1/completions",
            {"prompt": NOTES[:300], "n": 2, "max_tokens": 0, "echo": True, "logprobs": 1},
            413,
            "--max-scored-chars",
        ),
        (
            "/v1/completions",
            {"prompt": "the", "max_tokens": 1, "logprobs": 11},
            422,
            "--max-alternatives",
        ),
        ("/score", {"text": NOTES[:501]}, 413, "--max-scored-chars"),
        ("/report", {"text": NOTES[:501]}, 413, "--max-scored-chars"),
        ("/activations", {"text": NOTES[:501]}, 413, "--max-scored-chars"),
        (
            "/accuracy",
            {"items": [{"prompt": NOTES[:200], "answer": "the"}] * 3},
            413,
            "--max-scored-chars",
        ),
        ("/predict", {"text": "x" * 20_001}, 413, "--max-text-chars"),
    ],
)  # fmt: skip
def test_each_cap_names_the_flag_that_raises_it(
    capped: Server, path: str, body: dict[str, object], status: int, flag: str
) -> None:
    error = refused(capped, path, body)
    assert error["status"] == status, error
    assert flag in str(error["message"]), error
    if not path.startswith("/v1/"):  # OpenAI's error shape has no room for it
        assert error["flag"] == flag, error


def test_within_the_caps_is_answered(capped: Server) -> None:
    ok = httpx.post(
        capped.url + "/v1/completions",
        json={"prompt": NOTES[:200], "n": 2, "max_tokens": 0, "echo": True, "logprobs": 1},
        timeout=60,
    )
    assert ok.status_code == 200, ok.text  # 400 characters scored


def test_the_choices_of_an_echo_share_the_scores_probabilities(capped: Server) -> None:
    text = NOTES[:120]
    body = {"prompt": text, "n": 2, "max_tokens": 0, "echo": True, "logprobs": 2}
    r = httpx.post(capped.url + "/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    first, second = (c["logprobs"] for c in r.json()["choices"])
    assert first == second
    score = httpx.post(capped.url + "/score", json={"text": text, "alternatives": 2}, timeout=60)
    steps = score.json()["steps"]
    assert first["tokens"] == list(text) and first["text_offset"] == list(range(len(text)))
    assert first["token_logprobs"][0] is None and len(steps) == len(text) - 1
    for lp, top, step in zip(
        first["token_logprobs"][1:], first["top_logprobs"][1:], steps, strict=True
    ):
        assert math.isclose(math.exp(lp), step["prob"], rel_tol=1e-6)
        assert {c: round(math.exp(v), 6) for c, v in top.items()} == {
            a["char"]: round(a["prob"], 6) for a in step["top"]
        }


def test_a_request_whose_client_has_gone_is_stopped(tmp_path: Path, notes_dir: Path) -> None:
    """A /score of a million characters, its client gone after half a second: the server
    stops it (499 in the access log and the metrics) instead of reading on, and answers
    the next request."""
    root = tmp_path / "checkpoints"
    copy_checkpoint(notes_dir, root / "notes")
    flags = ["--max-text-chars", "1000000", "--max-scored-chars", "1000000"]
    flags += ["--max-body-bytes", "4000000", "--access-log"]
    server = Server(root, *flags)
    try:
        text = (NOTES * (1_000_000 // len(NOTES) + 1))[:1_000_000]
        data = json.dumps({"text": text}).encode()
        head = (
            f"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(head + data)
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        line = None
        while line is None and time.monotonic() < deadline:
            lines = [
                json.loads(x) for x in server.log.read_text().splitlines() if x.startswith("{")
            ]
            line = next((x for x in lines if x.get("route") == "/score"), None)
            time.sleep(0.1)
        assert line is not None and line["status"] == 499, server.log.read_text()[-2000:]
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        assert 'charlm_requests_total{route="/score",status="499"} 1.0' in metrics
        r = httpx.post(server.url + "/predict", json={"text": "the "}, timeout=30)
        assert r.status_code == 200
    finally:
        server.stop()
