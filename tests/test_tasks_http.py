"""POST /accuracy on a real `charlm serve` (uvicorn) process: the library's numbers,
and its caps and errors as JSON."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from charlm.inference import Predictor
from charlm.tasks import AnswerItem, answer_accuracy

from .conftest import copy_checkpoint
from .serving import Server

pytestmark = [pytest.mark.slow, pytest.mark.server]  # a real server process

ITEMS = [
    {"prompt": "abc", "answer": "d", "fields": {"context": "3"}},
    {"prompt": "qrstuvwxyz", "answer": "ab", "fields": {"context": "10"}},
    {"prompt": "klm", "answer": "q", "fields": {"context": "3"}},
    {"prompt": "def", "answer": "gx", "fields": {}},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, alphabet_dir: Path) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("accuracy") / "checkpoints"
    copy_checkpoint(alphabet_dir, root / "alphabet")
    s = Server(root, "--max-accuracy-items", "5", "--max-text-chars", "50")
    yield s
    s.stop()


def post(server: Server, body: Any) -> httpx.Response:
    return httpx.post(server.url + "/accuracy", json=body, timeout=60)


def test_accuracy_over_http_is_the_library_result(server: Server, alphabet: Predictor) -> None:
    r = post(server, {"model": "alphabet", "items": ITEMS})
    assert r.status_code == 200
    items = [AnswerItem(i["prompt"], i["answer"], i["fields"]) for i in ITEMS]
    expected = answer_accuracy(alphabet, items).model_dump()
    body = r.json()
    assert _close(body, expected), (body, expected)
    assert (body["items"], body["correct"], body["accuracy"]) == (4, 2, 0.5)
    assert [(g["value"], g["items"], g["correct"]) for g in body["groups"]] == [
        ("3", 2, 1),
        ("10", 1, 1),
    ]
    r = post(server, {"items": ITEMS[:1], "by": []})  # one model loaded: it may be omitted
    assert r.status_code == 200 and r.json()["groups"] == [] and r.json()["accuracy"] == 1.0
    spec = httpx.get(server.url + "/openapi.json", timeout=30).json()["paths"]["/accuracy"]
    assert {"200", "413", "422"} <= set(spec["post"]["responses"])


def _close(got: Any, want: Any) -> bool:
    """Equal, floats within 1e-6 (the server computes with its own thread count)."""
    if isinstance(want, dict):
        return got.keys() == want.keys() and all(_close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return len(got) == len(want) and all(map(_close, got, want))
    if isinstance(want, float):
        return bool(abs(got - want) <= 1e-6)
    return bool(got == want)


@pytest.mark.parametrize(
    ("body", "status", "kind", "fragment"),
    [
        ({"items": [{"prompt": "", "answer": "a"}]}, 422, "input", "item 1: the prompt is empty"),
        (
            {"items": [ITEMS[0], {"prompt": "ab", "answer": "C"}]},
            422,
            "unknown_character",
            "item 2: the answer has a character the model has never seen: 'C'",
        ),
        ({"items": []}, 422, "input", "no items"),
        ({"items": ITEMS, "by": ["gap"]}, 422, "input", "no item has the field 'gap'"),
        ({"items": [{"prompt": "a"}]}, 422, "invalid_request", "items.0.answer"),
        ({"items": [{"prompt": "a", "answer": 1}]}, 422, "invalid_request", "items.0.answer"),
        ({"items": ITEMS * 2}, 413, "too_many_items", "items is 8; the limit is 5"),
        (
            {"items": [{"prompt": "a" * 50, "answer": "b"}]},
            413,
            "text_too_long",
            "item 1's prompt and answer is 51 characters long; the limit is 50",
        ),
    ],
)
def test_bad_accuracy_requests_get_json_errors(
    server: Server, body: Any, status: int, kind: str, fragment: str
) -> None:
    r = post(server, body)
    error = r.json()["error"]
    assert (r.status_code, error["type"]) == (status, kind) and fragment in error["message"]
    if status == 413:
        assert error["limit"] in (5, 50)
