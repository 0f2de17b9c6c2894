"""Every input is checked once, in the library: the command line, a program and an HTTP
request with the same bad value get the same message."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from charlm import CharLMError, Predictor, SampleConfig
from charlm.cli import main

Call = Callable[[Predictor], Any]

# (library call, CLI arguments after the checkpoint, HTTP path and body)
CASES: list[tuple[str, Call, list[str], str, dict[str, Any]]] = [
    (
        "negative top_k",
        lambda p: p.predict("abc", top_k=-1),
        ["predict", "CKPT", "abc", "--top-k", "-1"],
        "/predict",
        {"text": "abc", "top_k": -1},
    ),
    (
        "negative continuation",
        lambda p: p.predict("abc", continuation_length=-3),
        ["predict", "CKPT", "abc", "--continue", "-3"],
        "/predict",
        {"text": "abc", "continuation_length": -3},
    ),
    (
        "negative alternatives",
        lambda p: p.predict("abc", alternatives=-1),
        ["predict", "CKPT", "abc", "--alternatives", "-1"],
        "/predict",
        {"text": "abc", "alternatives": -1},
    ),
    (
        "unknown character",
        lambda p: p.predict("ab1c"),
        ["predict", "CKPT", "ab1c"],
        "/predict",
        {"text": "ab1c"},
    ),
    ("empty text", lambda p: p.predict(""), ["predict", "CKPT", ""], "/predict", {"text": ""}),
    (
        "score alternatives",
        lambda p: p.score("abc", alternatives=-2),
        ["score", "CKPT", "abc", "--alternatives", "-2"],
        "/score",
        {"text": "abc", "alternatives": -2},
    ),
    ("one character", lambda p: p.score("a"), ["score", "CKPT", "a"], "/score", {"text": "a"}),
    (
        "negative temperature",
        lambda p: p.generate("a", SampleConfig(temperature=-1.0)),
        ["generate", "CKPT", "--prompt", "a", "--temperature", "-1"],
        "/generate",
        {"prompt": "a", "temperature": -1.0},
    ),
    (
        "top_p 0",
        lambda p: p.generate("a", SampleConfig(top_p=0.0)),
        ["generate", "CKPT", "--prompt", "a", "--top-p", "0"],
        "/generate",
        {"prompt": "a", "top_p": 0.0},
    ),
    (
        "top_p over 1",
        lambda p: p.generate("a", SampleConfig(top_p=1.5)),
        ["generate", "CKPT", "--prompt", "a", "--top-p", "1.5"],
        "/generate",
        {"prompt": "a", "top_p": 1.5},
    ),
    (
        "negative generate top_k",
        lambda p: p.generate("a", SampleConfig(top_k=-4)),
        ["generate", "CKPT", "--prompt", "a", "--top-k", "-4"],
        "/generate",
        {"prompt": "a", "top_k": -4},
    ),
    (
        "negative length",
        lambda p: p.generate("a", SampleConfig(length=-1)),
        ["generate", "CKPT", "--prompt", "a", "--length", "-1"],
        "/generate",
        {"prompt": "a", "length": -1},
    ),
    (
        "negative seed",
        lambda p: p.generate("a", SampleConfig(seed=-1)),
        ["generate", "CKPT", "--prompt", "a", "--seed", "-1"],
        "/generate",
        {"prompt": "a", "seed": -1},
    ),
    (
        "huge seed",
        lambda p: p.generate("a", SampleConfig(seed=99999999999999999999999)),
        ["generate", "CKPT", "--prompt", "a", "--seed", "99999999999999999999999"],
        "/generate",
        {"prompt": "a", "seed": 99999999999999999999999},
    ),
    (
        "unknown prompt character",
        lambda p: p.generate("aQ", SampleConfig()),
        ["generate", "CKPT", "--prompt", "aQ"],
        "/generate",
        {"prompt": "aQ"},
    ),
]


@pytest.mark.parametrize(("name", "call", "argv", "path", "body"), CASES, ids=[c[0] for c in CASES])
def test_the_same_bad_value_gets_the_same_message_everywhere(
    name: str,
    call: Call,
    argv: list[str],
    path: str,
    body: dict[str, Any],
    alphabet: Predictor,
    alphabet_dir: Path,
    served: TestClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(CharLMError) as raised:
        call(alphabet)
    message = str(raised.value)

    rc = main([str(alphabet_dir) if a == "CKPT" else a for a in argv])
    out, err = capsys.readouterr()
    assert (rc, out, err) == (2, "", f"charlm: error: {message}\n")

    r = served.post(path, json={"model": "alphabet", **body})
    assert 400 <= r.status_code < 500
    assert r.json()["error"]["message"] == message
