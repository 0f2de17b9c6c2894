"""The service through its ASGI app (fast): schemas, numbers, errors, reload."""

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from charlm import errors
from charlm.cli import main
from charlm_service.app import create_app
from charlm_service.errors import STATUS
from charlm_service.settings import ServiceSettings

from .conftest import CORPORA, copy_checkpoint

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a JSON body")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def client(served_dir: Path) -> Iterator[TestClient]:
    settings = ServiceSettings(
        checkpoints_dir=served_dir,
        max_text_chars=500,
        max_continuation=300,
        max_generate_length=400,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as c:
        yield c


def post(client: TestClient, path: str, body: Any) -> tuple[int, Any]:
    r = client.post(path, json=body)
    return r.status_code, strict_json(r.text)


def test_health_and_models(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body.pop("predict_batches").keys() == {"batches", "requests", "largest"}
    assert body.pop("threads") >= 1
    assert body.pop("generation").keys() == {
        "active",
        "generations",
        "steps",
        "characters",
        "largest",
    }
    assert body == {"status": "ok", "models": ["alphabet", "notes"], "pending": 0}
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    a = models["alphabet"]
    assert a["vocab_size"] == 26 and a["vocab"] == list(LETTERS)
    assert a["architecture"]["hidden_size"] == 64 and a["architecture"]["num_layers"] == 1
    assert a["parameters"] == 26 * 16 + 4 * 64 * (16 + 64 + 2) + 64 * 26 + 26
    assert a["training"]["step"] == 1000 and a["training"]["best_val_loss"] < 1e-3
    assert models["notes"]["architecture"]["num_layers"] == 2


def test_predict_follows_the_cycle(client: TestClient) -> None:
    status, body = post(
        client, "/predict", {"model": "alphabet", "text": "abc", "continuation_length": 52}
    )
    assert status == 200 and body["model"] == "alphabet"
    assert body["next"][0] == {"char": "d", "prob": body["next"][0]["prob"]}
    assert body["next"][0]["prob"] >= 0.999 and len(body["next"]) == 5
    assert body["continuation"] == (LETTERS[3:] + LETTERS * 2)[:52]
    assert all(s["prob"] >= 0.999 and len(s["top"]) == 3 for s in body["steps"])
    status, body = post(client, "/predict", {"model": "alphabet", "text": "q", "top_k": 0})
    assert len(body["next"]) == 26 and abs(sum(d["prob"] for d in body["next"]) - 1) < 1e-5


def test_http_and_cli_give_the_same_numbers(
    client: TestClient, served_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = str(served_dir / "notes")
    text = "the rain came"
    _, http = post(client, "/predict", {"model": "notes", "text": text, "continuation_length": 20})
    main(["predict", ckpt, text, "--continue", "20", "--json"])
    cli = json.loads(capsys.readouterr().out)
    assert http["next"] == cli["next"] and http["continuation"] == cli["continuation"]
    assert http["steps"] == cli["steps"]
    _, http = post(client, "/score", {"model": "notes", "text": text})
    main(["score", ckpt, text, "--json"])
    cli = json.loads(capsys.readouterr().out)
    assert http == cli
    body = {"model": "notes", "prompt": "The ", "length": 80, "seed": 11, "temperature": 0.7}
    _, http = post(client, "/generate", body)
    main(
        [
            "generate",
            ckpt,
            "--prompt",
            "The ",
            "--length",
            "80",
            "--seed",
            "11",
            "--temperature",
            "0.7",
        ]
    )
    assert capsys.readouterr().out == "The " + http["text"] + "\n"


def test_report_is_the_score_as_a_self_contained_page(client: TestClient) -> None:
    r = client.post("/report", json={"model": "alphabet", "text": "mnopq", "alternatives": 2})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-disposition"] == 'attachment; filename="charlm-alphabet-report.html"'
    score = client.post("/score", json={"model": "alphabet", "text": "mnopq", "alternatives": 2})
    assert score.json()["steps"][0]["prob"] >= 0.999
    assert '"text":"mnopq"' in r.text and "CharLM.renderScore" in r.text
    assert not re.search(r'(src|href)="https?:', r.text)  # nothing fetched from elsewhere
    r = client.post("/report", json={"model": "alphabet", "text": "a" * 100_000})
    assert r.status_code == 413 and r.json()["error"]["type"] == "text_too_long"


def test_score_reports_per_step_confidence(client: TestClient) -> None:
    status, body = post(client, "/score", {"model": "alphabet", "text": "mnopq", "alternatives": 2})
    assert status == 200
    assert [s["char"] for s in body["steps"]] == list("nopq")
    assert all(s["rank"] == 1 and s["prob"] >= 0.999 and len(s["top"]) == 2 for s in body["steps"])
    assert (
        body["min_prob"] == min(s["prob"] for s in body["steps"]) and body["bits_per_char"] < 0.01
    )
    status, body = post(client, "/score", {"model": "alphabet", "text": "abz"})
    last = body["steps"][-1]
    assert last["char"] == "z" and last["top_char"] == "c" and last["rank"] > 1
    assert body["min_position"] == 2


def test_generate_is_reproducible_and_greedy_at_zero(client: TestClient) -> None:
    body = {"model": "notes", "prompt": "a", "length": 50, "seed": 5}
    assert post(client, "/generate", body)[1] == post(client, "/generate", body)[1]
    _, greedy = post(client, "/generate", {**body, "temperature": 0.0})
    _, predicted = post(
        client, "/predict", {"model": "notes", "text": "a", "continuation_length": 50}
    )
    assert greedy["text"] == predicted["continuation"]


def test_sse_stream_matches_the_plain_answer(client: TestClient) -> None:
    body = {"model": "notes", "prompt": "the ", "length": 40, "seed": 2}
    _, plain = post(client, "/generate", body)
    with client.stream("POST", "/generate", json={**body, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = [e for e in raw.split("\n\n") if e]
    chars = [json.loads(e.removeprefix("data: "))["char"] for e in events[:-1]]
    assert "".join(chars) == plain["text"]
    assert events[-1].startswith("event: done\ndata: ")
    assert json.loads(events[-1].split("data: ", 1)[1])["text"] == plain["text"]


def error_of(status: int, body: Any) -> tuple[int, str, str]:
    assert set(body) == {"error"}
    assert {"type", "message"} <= set(body["error"])
    return status, body["error"]["type"], body["error"]["message"]


BAD_REQUESTS: list[tuple[str, Any, int, str, str]] = [
    ("/predict", {"text": "abc"}, 422, "ambiguous_model", "alphabet, notes"),
    (
        "/predict",
        {"model": "nope", "text": "a"},
        404,
        "unknown_model",
        "loaded models: alphabet, notes",
    ),
    (
        "/predict",
        {"model": "alphabet", "text": "ab€c"},
        422,
        "unknown_character",
        "'€' at position 2",
    ),
    ("/predict", {"model": "alphabet", "text": ""}, 422, "input", "empty"),
    ("/predict", {"model": "alphabet"}, 422, "invalid_request", "text: Field required"),
    ("/predict", {"model": "alphabet", "text": 5}, 422, "invalid_request", "valid string"),
    (
        "/predict",
        {"model": "alphabet", "text": "a", "top_k": "3"},
        422,
        "invalid_request",
        "top_k",
    ),
    (
        "/predict",
        {"model": "alphabet", "text": "a", "top_k": -1},
        422,
        "invalid_value",
        "top_k must be an integer >= 0, got -1",
    ),
    (
        "/predict",
        {"model": "alphabet", "text": "a", "colour": 1},
        422,
        "invalid_request",
        "colour",
    ),
    (
        "/predict",
        {"model": "alphabet", "text": "a" * 501},
        413,
        "text_too_long",
        "limit is 500",
    ),
    (
        "/predict",
        {"model": "alphabet", "text": "a", "continuation_length": 301},
        422,
        "limit_exceeded",
        "limit is 300",
    ),
    (
        "/predict",
        {"model": "alphabet", "text": "a", "alternatives": 11},
        422,
        "limit_exceeded",
        "limit is 10",
    ),
    ("/score", {"model": "alphabet", "text": "a"}, 422, "input", "at least 2"),
    (
        "/score",
        {"model": "alphabet", "text": "a1b2"},
        422,
        "unknown_character",
        "'1' at position 1; '2' at position 3",
    ),
    ("/generate", {"model": "alphabet", "length": 401}, 422, "limit_exceeded", "length is 401"),
    (
        "/generate",
        {"model": "alphabet", "temperature": -0.5},
        422,
        "invalid_value",
        "temperature must be a finite number >= 0, got -0.5",
    ),
    ("/generate", {"model": "alphabet", "top_p": 0}, 422, "invalid_value", "top_p must be"),
    ("/generate", {"model": "alphabet", "top_p": 1.5}, 422, "invalid_value", "top_p must be"),
    ("/generate", {"model": "alphabet", "prompt": "X"}, 422, "unknown_character", "prompt has"),
    (
        "/generate",
        {"model": "alphabet", "prompt": "a" * 501},
        413,
        "text_too_long",
        "prompt is 501",
    ),
    ("/generate", {"model": "alphabet", "seed": -1}, 422, "invalid_value", "seed must be"),
]
"""(path, body, status, error type, part of the message), with max_text_chars=500,
max_continuation=300 and max_generate_length=400."""


@pytest.mark.parametrize(("path", "body", "status", "kind", "fragment"), BAD_REQUESTS)
def test_bad_requests_get_typed_json_errors(
    client: TestClient, path: str, body: Any, status: int, kind: str, fragment: str
) -> None:
    got_status, got_kind, message = error_of(*post(client, path, body))
    assert (got_status, got_kind) == (status, kind), message
    assert fragment in message


@pytest.mark.parametrize(
    "name",
    [
        "../alphabet",
        "/etc/passwd",
        "..",
        ".",
        "a/b",
        "%2e%2e%2falphabet",
        "alpha\x00bet",
        "",
        " alphabet",
    ],
)
def test_model_names_cannot_leave_the_checkpoints_directory(client: TestClient, name: str) -> None:
    status, kind, message = error_of(*post(client, "/predict", {"model": name, "text": "a"}))
    assert (status, kind) == (422, "model_name") and "invalid model name" in message


def test_malformed_bodies(client: TestClient) -> None:
    cases = [
        (b"{not json", {"content-type": "application/json"}, 400, "malformed_json"),
        (
            b'{"model": "alphabet", "text": "a", "top_k": NaN}',
            {"content-type": "application/json"},
            422,
            "invalid_request",
        ),
        (
            b'{"model": "alphabet", "temperature": Infinity}',
            {"content-type": "application/json"},
            422,
            "invalid_request",
        ),
        (
            b"text=abc",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_media_type",
        ),
        (b"[1, 2]", {"content-type": "application/json"}, 422, "invalid_request"),
    ]
    for content, headers, status, kind in cases:
        path = "/generate" if b"temperature" in content else "/predict"
        r = client.post(path, content=content, headers=headers)
        assert error_of(r.status_code, strict_json(r.text))[:2] == (status, kind), content
    r = client.post("/predict", content=b'{"model": "alphabet", "text": "ab"}')  # no content type
    assert error_of(r.status_code, r.json())[:2] == (415, "unsupported_media_type")
    assert error_of(*(lambda r: (r.status_code, r.json()))(client.get("/predict")))[:2] == (
        405,
        "method_not_allowed",
    )
    assert error_of(*(lambda r: (r.status_code, r.json()))(client.get("/nowhere")))[:2] == (
        404,
        "not_found",
    )


def all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | all_subclasses(sub)
    return out


def test_every_error_type_has_a_status() -> None:
    tree = {errors.CharLMError} | all_subclasses(errors.CharLMError)
    assert tree <= set(STATUS), tree - set(STATUS)
    assert all(400 <= code < 600 for code, _ in STATUS.values())
    kinds = [kind for _, kind in STATUS.values()]
    assert len(kinds) == len(set(kinds))


def test_every_error_status_is_documented_on_the_routes(client: TestClient) -> None:
    """The OpenAPI schema lists every status an error can answer with, and the
    `error.type`s behind it, as `errors.STATUS` has them (nothing restated by hand)."""
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/predict", "/score", "/activations", "/v1/completions"):
        responses = paths[route]["post"]["responses"]
        for status, kind in STATUS.values():
            assert f"`{kind}`" in responses[str(status)]["description"], (route, status, kind)
        for status in (400, 401, 408, 413, 415, 422, 429):
            assert str(status) in responses, (route, status)


def test_every_route_that_computes_is_under_admission_control(client: TestClient) -> None:
    """Admission counts the routes marked on themselves (the schema shows the mark): each
    POST that computes with a model, and no other (the tokenizer's routes, /health and
    /models are never refused)."""
    app = client.app
    (admission,) = [m for m in app.user_middleware if m.cls.__name__ == "Admission"]  # type: ignore[attr-defined]
    paths = client.get("/openapi.json").json()["paths"]
    marked = {p for p, ops in paths.items() if ops.get("post", {}).get("x-charlm-admitted")}
    assert (
        admission.kwargs["paths"]
        == marked
        == {
            "/predict",
            "/score",
            "/report",
            "/activations",
            "/accuracy",
            "/generate",
            "/v1/completions",
        }
    )


def test_no_models_and_broken_models(tmp_path: Path, alphabet_dir: Path) -> None:
    with TestClient(
        create_app(ServiceSettings(checkpoints_dir=tmp_path / "none")), base_url="http://127.0.0.1"
    ) as c:
        assert c.get("/health").json()["models"] == []
        assert error_of(*post(c, "/predict", {"text": "a"}))[:2] == (503, "no_model")
    copy_checkpoint(alphabet_dir, tmp_path / "good")
    broken = copy_checkpoint(alphabet_dir, tmp_path / "broken")
    (broken / "checkpoint.json").write_text("{}")
    with TestClient(
        create_app(ServiceSettings(checkpoints_dir=tmp_path)), base_url="http://127.0.0.1"
    ) as c:
        models = c.get("/models").json()
        assert [m["name"] for m in models["models"]] == ["good"]
        assert "format_version" in models["errors"]["broken"]
        status, body = post(c, "/predict", {"text": "abc"})  # one model: 'model' may be omitted
        assert status == 200 and body["model"] == "good" and body["next"][0]["char"] == "d"
        assert error_of(*post(c, "/predict", {"model": "broken", "text": "a"}))[:2] == (
            503,
            "incompatible_checkpoint",
        )


@pytest.mark.slow
def test_new_and_retrained_models_are_served_without_restart(
    tmp_path: Path, alphabet_dir: Path, notes_dir: Path
) -> None:
    root = tmp_path / "ckpts"
    copy_checkpoint(alphabet_dir, root / "alphabet")
    with TestClient(
        create_app(ServiceSettings(checkpoints_dir=root)), base_url="http://127.0.0.1"
    ) as c:
        assert c.get("/health").json()["models"] == ["alphabet"]
        copy_checkpoint(notes_dir, root / "notes")
        r = c.post("/models/reload", json={}).json()
        assert r == {
            "models": ["alphabet", "notes"],
            "loaded": ["notes"],
            "removed": [],
            "errors": {},
        }
        copy_checkpoint(notes_dir, root / "fresh")  # picked up on first use, no reload
        assert post(c, "/predict", {"model": "fresh", "text": "the"})[0] == 200
        # Retrain 'alphabet' in place on the ab corpus: the next call sees the new model.
        assert (
            main(
                [
                    "train",
                    str(CORPORA / "ab.txt"),
                    "--name",
                    "alphabet",
                    "--checkpoints-dir",
                    str(root),
                    "--overwrite",
                    "--quiet",
                    "--max-steps",
                    "50",
                ]
            )
            == 0
        )
        status, body = post(c, "/predict", {"model": "alphabet", "text": "ab", "top_k": 0})
        assert status == 200 and [d["char"] for d in body["next"]] in (["a", "b"], ["b", "a"])
        shutil.rmtree(root / "fresh")
        assert error_of(*post(c, "/predict", {"model": "fresh", "text": "the"}))[:2] == (
            404,
            "unknown_model",
        )
        assert c.post("/models/reload", json={}).json()["models"] == ["alphabet", "notes"]


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/health", "/models", "/models/reload", "/predict", "/score", "/generate"):
        assert path in spec["paths"]
    assert client.get("/docs").status_code == 200
