"""Hostile files and hostile clients: every case gets a clear error, nothing crashes,
nothing else is affected, and no answer leaks a path of the server's."""

import asyncio
import json
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from charlm import CharLMError, Predictor
from charlm.cli import main
from charlm.registry import ModelRegistry
from charlm_service.app import create_app
from charlm_service.settings import ServiceSettings

from .conftest import copy_checkpoint
from .hostile import SERVED_ONLY, make_all
from .serving import Server


@pytest.fixture(scope="module")
def hostile(
    tmp_path_factory: pytest.TempPathFactory, alphabet_dir: Path
) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile") / "checkpoints"
    cases = make_all(alphabet_dir, root)
    copy_checkpoint(alphabet_dir, root / "good")
    return root, cases


def listed(root: Path, cases: dict[str, str]) -> set[str]:
    """The cases that look like checkpoints (a checkpoint.json file), so the service lists
    them as models with errors; the rest are not checkpoints at all."""
    return {name for name in cases if (root / name / "checkpoint.json").is_file()}


def test_there_are_at_least_fifty_cases(hostile: tuple[Path, dict[str, str]]) -> None:
    root, cases = hostile
    assert len(cases) >= 50 and len(listed(root, cases)) >= 50


def test_the_library_refuses_each_one_with_a_charlm_error(
    hostile: tuple[Path, dict[str, str]],
) -> None:
    root, cases = hostile
    for name, what in cases.items():
        if name in SERVED_ONLY:
            continue
        with pytest.raises(CharLMError) as raised:
            Predictor.from_checkpoint(root / name, name=name)
        message = str(raised.value)
        assert name in message, (what, message)
        assert str(root.parent) not in message, (what, message)  # no server paths
        message.encode("utf-8")  # printable anywhere: no lone surrogates


def test_the_cli_refuses_each_one_in_one_line(
    hostile: tuple[Path, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, cases = hostile
    for name, what in cases.items():
        if name in SERVED_ONLY:
            continue
        rc = main(["predict", str(root / name), "abc"])
        out, err = capsys.readouterr()
        assert (rc, out) == (2, ""), what
        assert err.startswith("charlm: error: ") and err.count("\n") == 1, (what, err)


def _no_paths(text: str, root: Path) -> None:
    assert str(root.parent) not in text and "/tmp" not in text, text[:300]


@pytest.mark.server
@pytest.mark.slow
def test_a_server_starts_serves_and_lists_every_bad_one(
    hostile: tuple[Path, dict[str, str]],
) -> None:
    root, cases = hostile
    server = Server(root)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert c.get("/health").json()["models"] == ["good"]
            body = c.get("/models")
            assert body.status_code == 200
            _no_paths(body.text, root)
            models = body.json()
            assert [m["name"] for m in models["models"]] == ["good"]
            assert set(models["errors"]) == listed(root, cases)
            for name in sorted(listed(root, cases)):
                r = c.post("/predict", json={"model": name, "text": "abc"})
                assert r.status_code == 503, (name, r.text)
                assert r.json()["error"]["type"] == "incompatible_checkpoint"
                _no_paths(r.text, root)
            good = c.post("/predict", json={"model": "good", "text": "abc"}).json()
            assert good["next"][0]["char"] == "d"
            reload = c.post("/models/reload", json={})
            assert reload.status_code == 200 and set(reload.json()["errors"]) == listed(root, cases)
    finally:
        server.stop()


@pytest.mark.slow
def test_hot_reload_of_hostile_checkpoints(
    tmp_path: Path, hostile: tuple[Path, dict[str, str]], alphabet_dir: Path
) -> None:
    root, cases = hostile
    live = tmp_path / "live"
    copy_checkpoint(alphabet_dir, live / "good")
    with TestClient(
        create_app(ServiceSettings(checkpoints_dir=live)), base_url="http://127.0.0.1"
    ) as c:
        assert c.get("/models").json()["errors"] == {}
        for name in cases:
            source = root / name
            if source.is_symlink():
                (live / name).symlink_to(source.resolve())
            else:
                shutil.copytree(source, live / name, symlinks=True)
        r = c.post("/models/reload", json={})
        assert r.status_code == 200
        assert set(r.json()["errors"]) == listed(live, cases)
        _no_paths(r.text, tmp_path)
        models = c.get("/models")
        assert models.status_code == 200 and [m["name"] for m in models.json()["models"]] == [
            "good"
        ]
        assert (
            c.post("/predict", json={"model": "good", "text": "xyz"}).json()["next"][0]["char"]
            == "a"
        )


def test_a_failed_load_is_remembered_until_its_files_change(
    tmp_path: Path, alphabet_dir: Path
) -> None:
    copy_checkpoint(alphabet_dir, tmp_path / "m")
    manifest = tmp_path / "m" / "checkpoint.json"
    good = manifest.read_text()
    manifest.write_text(good.replace('"format_version": 1', '"format_version": 7'))
    registry = ModelRegistry(tmp_path)
    errors = []
    for _ in range(3):
        with pytest.raises(CharLMError) as raised:
            registry.get("m")
        errors.append(raised.value)
    assert errors[0] is errors[1] is errors[2]  # not read again: the same error object
    time.sleep(0.01)
    manifest.write_text(good)  # fixed: the next request loads it
    assert registry.get("m").predictor.predict("abc").next[0].char == "d"
    assert registry.errors() == {}


# -- hostile requests -------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(served_dir: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(checkpoints_dir=served_dir, max_body_bytes=4096)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        yield c


@pytest.mark.parametrize(
    "body",
    [
        {"model": "notes", "prompt": "the ", "temperature": 1e-45, "length": 20},
        {"model": "notes", "prompt": "the ", "top_p": 1e-46, "length": 20},
        {"model": "notes", "prompt": "the ", "temperature": 5e-324, "length": 20},
        {"model": "notes", "prompt": "the ", "temperature": 1e308, "length": 20},
    ],
)
def test_extreme_sampling_values_never_give_a_5xx_or_a_cut_stream(
    client: TestClient, body: dict[str, Any]
) -> None:
    r = client.post("/generate", json=body)
    assert r.status_code == 200 and len(r.json()["text"]) == 20
    with client.stream("POST", "/generate", json={**body, "stream": True}) as s:
        raw = "".join(s.iter_text())
    assert s.status_code == 200 and "event: done" in raw


@pytest.mark.parametrize("field", ["text", "prompt"])
def test_a_lone_surrogate_gets_a_json_422(client: TestClient, field: str) -> None:
    path = "/predict" if field == "text" else "/generate"
    raw = '{"model": "alphabet", "' + field + '": "th\\ud800e"}'
    r = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    error = json.loads(r.content)["error"]  # valid JSON, the character as an escape
    assert error["type"] == "unknown_character" and "\\ud800" in error["message"]
    assert error["characters"][0]["position"] == 2


@pytest.mark.parametrize("path", ["/predict", "/score", "/report"])
def test_a_skipped_lone_surrogate_is_answered_as_an_escape(client: TestClient, path: str) -> None:
    """Answers are written by pydantic's serializer, which refuses lone surrogates (it
    crashed /score and /report); the skipped character comes back as a JSON escape."""
    raw = '{"model": "alphabet", "text": "ab\\ud800c", "on_unknown": "skip"}'
    r = client.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200 and b"\\ud800" in r.content
    if path == "/report":  # the page carries the result as JSON, escaped for a script
        assert r.headers["content-type"].startswith("text/html")
        return
    assert r.headers["content-type"] == "application/json"
    answer = json.loads(r.content)
    assert answer["unknown"] == [{"char": "\ud800", "position": 2}]
    plain = client.post(path, json={"model": "alphabet", "text": "abc"}).json()
    if path == "/predict":
        assert answer["next"] == plain["next"] and answer["next"][0]["char"] == "d"
    else:  # the same steps as the text without it
        assert [s["prob"] for s in answer["steps"]] == [s["prob"] for s in plain["steps"]]


@pytest.mark.parametrize("stream", [False, True])
def test_an_echoed_lone_surrogate_is_answered_as_an_escape(
    client: TestClient, stream: bool
) -> None:
    """/v1/completions echoes the prompt as given, a skipped lone surrogate included (it
    crashed with echo, logprobs or not, streamed or not)."""
    raw = (
        '{"model": "alphabet", "prompt": "ab\\ud800c", "max_tokens": 2, "echo": true, '
        f'"logprobs": 1, "on_unknown": "skip", "stream": {json.dumps(stream)}}}'
    )
    r = client.post("/v1/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 200
    if stream:
        events = [line[6:] for line in r.text.splitlines() if line.startswith("data: {")]
        texts = "".join(json.loads(e)["choices"][0]["text"] for e in events)
    else:
        choice = json.loads(r.content)["choices"][0]
        texts = choice["text"]
        tokens, logprobs = choice["logprobs"]["tokens"], choice["logprobs"]["token_logprobs"]
        assert tokens[:4] == ["a", "b", "\ud800", "c"] and logprobs[2] is None
    assert texts == "ab\ud800cde"


def test_oversized_and_malformed_bodies(client: TestClient) -> None:
    big = json.dumps({"model": "alphabet", "text": "a" * 5000})
    r = client.post("/predict", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "body_too_large"
    r = client.post(
        "/predict",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": "x"},
    )
    assert r.status_code == 400


def test_huge_weights_cannot_reach_a_request(tmp_path: Path, alphabet_dir: Path) -> None:
    root = tmp_path / "c"
    make_all(alphabet_dir, tmp_path / "all")
    shutil.copytree(tmp_path / "all" / "weights-1e38", root / "huge")
    with TestClient(
        create_app(ServiceSettings(checkpoints_dir=root)), base_url="http://127.0.0.1"
    ) as c:
        r = c.post("/predict", json={"model": "huge", "text": "abc"})
        assert r.status_code == 503 and "beyond" in r.json()["error"]["message"]


def slow_body_clients(url: str, count: int) -> list[socket.socket]:
    """Connections that send headers announcing a 1,000-byte body, then one byte."""
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        s.sendall(
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        socks.append(s)
    return socks


@pytest.mark.server
@pytest.mark.slow
def test_slow_bodies_hold_no_slots_and_time_out(served_dir: Path) -> None:
    server = Server(served_dir, "--max-pending", "4", "--body-timeout-s", "3")
    socks: list[socket.socket] = []
    try:
        socks = slow_body_clients(server.url, 20)  # five times --max-pending
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert c.get("/health").json()["pending"] == 0
            for _ in range(10):
                r = c.post("/predict", json={"model": "alphabet", "text": "abc"})
                assert r.status_code == 200
        socks[0].settimeout(60)
        answer = b""
        while chunk := socks[0].recv(4096):  # each slow client gets 408 once its time is up
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout" in answer
    finally:
        for s in socks:
            s.close()
        server.stop()


@pytest.fixture(scope="module")
def logged(served_dir: Path) -> Iterator[Server]:
    """A real server writing its access log."""
    server = Server(served_dir, "--access-log")
    yield server
    server.stop()


def exchange(port: int, data: bytes) -> tuple[list[bytes], bytes, bool]:
    """Send `data` on one connection; the answers' status lines, all that came back, and
    whether the server closed the connection (within 10 s) after them."""
    received = b""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(data)
        s.settimeout(10)
        try:
            while chunk := s.recv(65536):
                received += chunk
            closed = True
        except TimeoutError:
            closed = False
    statuses = re.findall(rb"HTTP/1\.1 \d{3} [A-Za-z ]+", received)  # bodies end without CRLF
    return statuses, received, closed


@pytest.mark.server
@pytest.mark.slow
def test_a_body_length_given_twice_is_refused_and_the_connection_closed(logged: Server) -> None:
    """Content-Length and Transfer-Encoding together: 400 and the connection closed, so a
    request smuggled after the body (as a proxy trusting Content-Length would pass it
    on) is never answered; whatever else would refuse the request (here its Host)."""
    body = b'{"model": "alphabet", "text": "abc"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    smuggled = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for host in (b"127.0.0.1", b"elsewhere.example"):
        head = (
            b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % (host, len(chunked))
        )
        statuses, received, closed = exchange(logged.port, head + chunked + smuggled)
        assert statuses == [b"HTTP/1.1 400 Bad Request"] and closed, (host, statuses, closed)
        assert b'"ambiguous_body_length"' in received and b"Content-Length and Transfer" in received
    # Each alone is as before: a chunked body, then the next request on the same connection.
    head = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    closing = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    statuses, _, closed = exchange(logged.port, head + chunked + closing)
    assert statuses == [b"HTTP/1.1 200 OK"] * 2 and closed


@pytest.mark.server
@pytest.mark.slow
@pytest.mark.parametrize(
    ("request_head", "problem"),
    [
        (
            b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1e3\r\n",
            b"Content-Length",
        ),
        (b"POST /predict HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n", b"Duplicate"),
        (b"GET /health HTTP/1.1\r\nHost : 127.0.0.1\r\n", b"header"),
        (b"G\xc3\x89T /health HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"method"),
    ],
    ids=["length-not-a-number", "length-twice", "space-in-a-header-name", "bad-method"],
)
def test_malformed_http_gets_a_json_400_and_the_connection_closed(
    logged: Server, request_head: bytes, problem: bytes
) -> None:
    """What the HTTP parser itself refuses is answered in the service's JSON error shape,
    naming what is wrong, and the connection closes; the server goes on answering."""
    statuses, received, closed = exchange(logged.port, request_head + b"\r\n{}")
    assert statuses == [b"HTTP/1.1 400 Bad Request"] and closed
    head, body = received.split(b"\r\n\r\n", 1)
    assert b"content-type: application/json" in head.lower()
    assert b"x-content-type-options: nosniff" in head.lower()  # as on every answer
    error = json.loads(body)["error"]
    assert error["type"] == "bad_request"
    assert error["message"].startswith("the request is not valid HTTP/1.1: ")
    assert problem.decode().lower() in error["message"].lower()
    closing = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert exchange(logged.port, closing)[0] == [b"HTTP/1.1 200 OK"]


def test_the_app_refuses_a_body_length_given_twice_under_any_server(served_dir: Path) -> None:
    """The same refusal in the app itself (`BodyFraming`), for servers whose parser lets
    such a request through (h11 reads it as chunked)."""
    app = create_app(ServiceSettings(checkpoints_dir=served_dir))
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-length", b"5"),
        (b"transfer-encoding", b"chunked"),
    ]
    scope = {"type": "http", "method": "POST", "path": "/predict", "raw_path": b"/predict",
             "query_string": b"", "headers": headers, "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 1)}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400 and (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["error"]["type"] == "ambiguous_body_length"


@pytest.mark.server
@pytest.mark.slow
def test_a_deeply_nested_body_is_a_clean_400_and_logged(logged: Server) -> None:
    """JSON nested 5,000 deep: 400 naming the problem, no traceback in the server's log,
    and the request's line in the access log."""
    deep = b"[" * 5000 + b"]" * 5000
    for path, body in (
        ("/predict", b'{"model": "alphabet", "text": ' + deep + b"}"),
        ("/v1/completions", deep),
    ):
        r = httpx.post(
            logged.url + path, content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 400, r.text
        assert "nested too deeply" in r.json()["error"]["message"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        log = logged.log.read_text()
        lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
        answered = {(x["path"], x["status"]) for x in lines}
        if {("/predict", 400), ("/v1/completions", 400)} <= answered:
            break
        time.sleep(0.1)
    assert {("/predict", 400), ("/v1/completions", 400)} <= answered, log[-2000:]
    assert "Traceback" not in log and "unexpected error" not in log, log[-2000:]
