"""The OpenAI-compatible routes, through the official `openai` client against a real
`charlm serve`: the same numbers as charlm's own routes, streaming, echo logprobs, and
errors raised as the client's own exceptions."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from .conftest import copy_checkpoint
from .serving import Server

pytestmark = [pytest.mark.slow, pytest.mark.server]  # a real server process

KEY = "k" * 24


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, alphabet_dir: Path, notes_dir: Path
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("openai") / "checkpoints"
    copy_checkpoint(alphabet_dir, root / "alphabet")
    copy_checkpoint(notes_dir, root / "notes")
    s = Server(root)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def post(server: Server, path: str, body: dict[str, object]) -> dict[str, object]:
    r = httpx.post(server.url + path, json=body, timeout=60)
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


def test_models_are_listed(client: openai.OpenAI) -> None:
    listed = client.models.list()
    assert [m.id for m in listed] == ["alphabet", "notes"]
    assert all(m.object == "model" and m.owned_by == "charlm" for m in listed)


def test_greedy_completion_with_logprobs_is_predicts(client: openai.OpenAI, server: Server) -> None:
    r = client.completions.create(
        model="alphabet", prompt="abc", max_tokens=5, temperature=0, logprobs=3
    )
    choice = r.choices[0]
    assert choice.text == "defgh" and choice.finish_reason == "length" and choice.index == 0
    assert r.object == "text_completion" and r.model == "alphabet" and r.id.startswith("cmpl-")
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (3, 5, 8)
    lp = choice.logprobs
    assert lp is not None and lp.tokens == list("defgh") and lp.text_offset == [0, 1, 2, 3, 4]
    # The same numbers as /predict's greedy continuation and /score's steps.
    pred = post(
        server,
        "/predict",
        {"model": "alphabet", "text": "abc", "continuation_length": 5, "alternatives": 3},
    )
    for got, step in zip(lp.token_logprobs, pred["steps"], strict=True):  # type: ignore[call-overload]
        assert got == pytest.approx(math.log(step["prob"]), abs=1e-6)
    score = post(server, "/score", {"model": "alphabet", "text": "abcdefgh", "alternatives": 3})
    for top, step in zip(lp.top_logprobs, score["steps"][2:], strict=True):  # type: ignore[index]
        assert top == pytest.approx({c["char"]: math.log(c["prob"]) for c in step["top"]})


def test_echo_gives_the_prompts_own_logprobs(client: openai.OpenAI, server: Server) -> None:
    text = "The rain came down."
    r = client.completions.create(model="notes", prompt=text, max_tokens=0, echo=True, logprobs=0)
    lp = r.choices[0].logprobs
    assert r.choices[0].text == text and lp is not None
    assert lp.tokens == list(text) and lp.text_offset == list(range(len(text)))
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    score = post(server, "/score", {"model": "notes", "text": text})
    want = [math.log(s["prob"]) for s in score["steps"]]  # type: ignore[index]
    assert lp.token_logprobs[1:] == pytest.approx(want, rel=1e-9)
    # Summed, the prompt's log-likelihood is /score's bits per character, in nats.
    total = -sum(lp.token_logprobs[1:])  # type: ignore[arg-type]
    assert total / (len(text) - 1) / math.log(2) == pytest.approx(score["bits_per_char"], rel=1e-6)


def test_a_seeded_sample_is_generates(client: openai.OpenAI, server: Server) -> None:
    settings = {"temperature": 0.8, "top_p": 0.9}
    r = client.completions.create(
        model="notes", prompt=["The rain", "A bird"], max_tokens=40, n=2, seed=11, **settings
    )
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    for c in r.choices:
        prompt = ["The rain", "A bird"][c.index // 2]
        want = post(
            server,
            "/generate",
            {
                "model": "notes",
                "prompt": prompt,
                "length": 40,
                "seed": 11 + c.index % 2,
                **settings,
            },
        )
        assert c.text == want["text"]
    assert r.usage.prompt_tokens == len("The rain") + len("A bird")
    assert r.usage.completion_tokens == 160


def test_stop_texts_cut_the_completion(client: openai.OpenAI, server: Server) -> None:
    full = post(
        server, "/generate", {"model": "notes", "prompt": "The ", "length": 200, "seed": 5}
    )["text"]
    assert isinstance(full, str)
    stops = [" the", "."]
    cut = min(i for i in (full.find(s) for s in stops) if i >= 0)
    r = client.completions.create(model="notes", prompt="The ", max_tokens=200, seed=5, stop=stops)
    assert r.choices[0].text == full[:cut] and r.choices[0].finish_reason == "stop"


def test_streaming_sends_the_same_text_in_chunks(client: openai.OpenAI, server: Server) -> None:
    kwargs = {"model": "notes", "prompt": "The rain", "max_tokens": 60, "seed": 2, "logprobs": 2}
    whole = client.completions.create(**kwargs)  # type: ignore[call-overload]
    chunks = list(
        client.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs)
    )  # type: ignore[call-overload]
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == whole.choices[0].text and len(texts) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    streamed = [
        x
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for x in c.choices[0].logprobs.token_logprobs
    ]
    assert streamed == pytest.approx(whole.choices[0].logprobs.token_logprobs, abs=1e-9)
    offsets = [
        x
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for x in c.choices[0].logprobs.text_offset
    ]
    assert offsets == list(range(60))
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 60
    # On the wire: server-sent events ending with [DONE].
    with httpx.stream("POST", server.url + "/v1/completions", json={**kwargs, "stream": True}) as r:
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["object"] == "text_completion"


def test_a_stop_text_split_across_pieces_is_never_sent(
    client: openai.OpenAI, server: Server
) -> None:
    full = post(server, "/generate", {"model": "notes", "prompt": "A", "length": 300, "seed": 9})[
        "text"
    ]
    assert isinstance(full, str)
    stop = next(
        full[i : i + 3] for i in range(20, 250) if full[i : i + 3].strip() == full[i : i + 3]
    )
    chunks = list(
        client.completions.create(
            model="notes", prompt="A", max_tokens=300, seed=9, stop=stop, stream=True
        )
    )
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == full[: full.find(stop)] and stop not in text
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("kwargs", "error", "code", "words"),
    [
        (
            {"model": "alphabet", "prompt": "ab!"},
            openai.UnprocessableEntityError,
            "unknown_character",
            "'!' at position 2",
        ),
        (
            {"model": "nothing", "prompt": "ab"},
            openai.NotFoundError,
            "unknown_model",
            "unknown model 'nothing'",
        ),
        (
            {"model": "alphabet", "prompt": "ab", "logprobs": 27},
            openai.UnprocessableEntityError,
            "limit_exceeded",
            "logprobs is 27; the limit is 26",
        ),
        (
            {"model": "alphabet", "prompt": "ab", "frequency_penalty": 0.5},
            openai.UnprocessableEntityError,
            "input",
            "frequency_penalty is not supported",
        ),
        (
            {"model": "alphabet", "prompt": "ab", "temperature": -1},
            openai.UnprocessableEntityError,
            "invalid_request",
            "temperature",
        ),
        (
            {"model": "alphabet", "prompt": "ab", "max_tokens": 10_001},
            openai.UnprocessableEntityError,
            "limit_exceeded",
            "length is 10001; the limit is 10000",
        ),
    ],
)
def test_bad_requests_raise_the_clients_errors(
    client: openai.OpenAI, kwargs: dict[str, object], error: type[Exception], code: str, words: str
) -> None:
    with pytest.raises(error) as caught:
        client.completions.create(**kwargs)  # type: ignore[call-overload]
    body = caught.value.body  # type: ignore[attr-defined]
    assert body["code"] == code and words in body["message"]
    assert body["type"] == (
        "not_found_error" if error is openai.NotFoundError else "invalid_request_error"
    )
    assert set(body) == {"message", "type", "param", "code"}


def test_chat_is_refused_with_a_reason(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.chat.completions.create(
            model="alphabet", messages=[{"role": "user", "content": "hi"}]
        )
    assert "no chat template" in caught.value.body["message"]  # type: ignore[index]


def test_the_api_key_is_a_bearer_token(tmp_path: Path, alphabet_dir: Path) -> None:
    root = tmp_path / "checkpoints"
    copy_checkpoint(alphabet_dir, root / "alphabet")
    s = Server(root, "--api-key", KEY)
    try:
        wrong = openai.OpenAI(base_url=s.url + "/v1", api_key="not-the-key", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            wrong.completions.create(model="alphabet", prompt="ab")
        assert caught.value.body["type"] == "authentication_error"  # type: ignore[index]
        right = openai.OpenAI(base_url=s.url + "/v1", api_key=KEY, max_retries=0)
        assert (
            right.completions.create(model="alphabet", prompt="ab", max_tokens=3, temperature=0)
            .choices[0]
            .text
            == "cde"
        )
    finally:
        s.stop()


def test_the_schema_lists_the_v1_routes(server: Server) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/v1/completions", "/v1/models", "/v1/chat/completions"} <= set(paths)


def test_tokens_are_characters(server: Server, client: openai.OpenAI) -> None:
    """vLLM's tokenizer endpoints, which lm-evaluation-harness's remote tokenizer reads;
    and token ids as a prompt."""
    info = httpx.get(server.url + "/tokenizer_info", params={"model": "alphabet"}).json()
    assert info["vocab_size"] == 26 and "eos_token" in info and info["eos_token"] is None
    ids = post(
        server, "/tokenize", {"model": "alphabet", "prompt": "abz", "add_special_tokens": False}
    )
    assert ids == {"tokens": [0, 1, 25], "count": 3, "max_model_len": None}
    back = post(server, "/detokenize", {"model": "alphabet", "tokens": [2, 3]})
    assert back == {"prompt": "cd"}
    bad = httpx.post(server.url + "/detokenize", json={"model": "alphabet", "tokens": [26]})
    assert bad.status_code == 422 and "26 is not a token of this model (0 to 25)" in bad.text
    unknown = httpx.post(server.url + "/tokenize", json={"model": "alphabet", "prompt": "a!"})
    assert unknown.status_code == 422 and unknown.json()["error"]["type"] == "unknown_character"
    several = httpx.post(server.url + "/tokenize", json={"prompt": "ab"})
    assert several.status_code == 422 and several.json()["error"]["type"] == "ambiguous_model"
    # Token ids in place of text: one prompt, or several.
    one = client.completions.create(model="alphabet", prompt=[0, 1, 2], max_tokens=2, temperature=0)
    assert one.choices[0].text == "de"
    two = client.completions.create(
        model="alphabet", prompt=[[0], [24, 25]], max_tokens=1, temperature=0
    )
    assert [c.text for c in two.choices] == ["b", "a"]
    with pytest.raises(openai.UnprocessableEntityError):
        client.completions.create(model="alphabet", prompt=[[0, 99]], max_tokens=1)


def test_tokens_obey_the_text_limit(server: Server) -> None:
    """/tokenize and /detokenize hold a text to --max-text-chars (20,000 by default), as
    /v1/completions does a prompt given as token ids: 413, naming the cap and the flag."""
    cap = 20_000
    for path, body in (
        ("/tokenize", {"model": "alphabet", "prompt": "a" * (cap + 1)}),
        ("/detokenize", {"model": "alphabet", "tokens": [0] * (cap + 1)}),
        ("/v1/completions", {"model": "alphabet", "prompt": [0] * (cap + 1), "max_tokens": 1}),
    ):
        r = httpx.post(server.url + path, json=body, timeout=30)
        assert r.status_code == 413, (path, r.text[:200])
        error = r.json()["error"]
        assert str(cap) in error["message"] and "--max-text-chars" in error["message"], path
    assert post(server, "/tokenize", {"model": "alphabet", "prompt": "a" * cap})["count"] == cap
    back = post(server, "/detokenize", {"model": "alphabet", "tokens": [0] * cap})
    assert back == {"prompt": "a" * cap}


def test_unknown_characters_are_skipped_or_replaced_at_every_door(
    client: openai.OpenAI, server: Server
) -> None:
    """/score, /predict and the echo path take the same policy as the library: text
    pasted from the web (a curly apostrophe) is read without it, or with `'` in its
    place, and the answers say which characters those were."""
    pasted, plain = "The rain\u2019s end came.", "The rains end came."
    gone = pasted.index("\u2019")
    refused = httpx.post(server.url + "/score", json={"model": "notes", "text": pasted})
    assert refused.status_code == 422
    assert refused.json()["error"]["type"] == "unknown_character"
    skipped = post(server, "/score", {"model": "notes", "text": pasted, "on_unknown": "skip"})
    want = post(server, "/score", {"model": "notes", "text": plain})
    assert skipped["unknown"] == [{"char": "\u2019", "position": gone}] and want["unknown"] == []
    assert [s["position"] for s in skipped["steps"]] == [  # type: ignore[index]
        i for i in range(1, len(pasted)) if i != gone
    ]
    assert [s["prob"] for s in skipped["steps"]] == [s["prob"] for s in want["steps"]]  # type: ignore[index]
    assert skipped["bits_per_char"] == want["bits_per_char"]
    body = {"model": "notes", "text": pasted, "top_k": 3}
    predicted = post(server, "/predict", {**body, "on_unknown": "replace", "replacement": " "})
    assert (
        predicted["next"]
        == post(server, "/predict", {**body, "text": "The rain s end came."})["next"]
    )
    bad = httpx.post(server.url + "/predict", json={**body, "on_unknown": "replace"})
    assert bad.status_code == 422 and "replacement must be one character" in bad.text
    # An evaluation harness's echo request: every character keeps its entry, the
    # skipped one's log-probability null, like the first's.
    r = client.completions.create(
        model="notes",
        prompt=pasted,
        max_tokens=0,
        echo=True,
        logprobs=0,
        extra_body={"on_unknown": "skip"},
    )
    lp = r.choices[0].logprobs
    assert lp is not None and "".join(lp.tokens) == pasted
    assert [i for i, v in enumerate(lp.token_logprobs) if v is None] == [0, gone]
    scored = [v for v in lp.token_logprobs if v is not None]
    assert scored == pytest.approx([math.log(s["prob"]) for s in skipped["steps"]], rel=1e-9)  # type: ignore[index]
    with pytest.raises(openai.UnprocessableEntityError, match="never seen"):
        client.completions.create(model="notes", prompt=pasted, max_tokens=1)
