import math

import pytest
import torch
import torch.nn.functional as F

from charlm.errors import ConfigError, InputError, UnknownCharacterError
from charlm.inference import CharProb, Predictor, SampleConfig

TEXT = "the wren came back to the woodpile. "


def direct_log_probs(p: Predictor, text: str) -> torch.Tensor:
    """Log-probabilities of each next character, from one plain forward pass."""
    ids = p.vocab.encode(text).unsqueeze(0)
    with torch.no_grad():
        logits, _ = p.model(ids)
    return F.log_softmax(logits[0].double(), -1)  # (T, V)


def next_distribution(p: Predictor, text: str, top_k: int = 0) -> list[CharProb]:
    return p.predict(text, top_k=top_k).next


def test_next_distribution_is_the_softmax_of_the_last_logits(notes: Predictor) -> None:
    dist = next_distribution(notes, TEXT)
    assert len(dist) == len(notes.vocab)
    assert sum(d.prob for d in dist) == pytest.approx(1.0, abs=1e-5)
    assert [d.prob for d in dist] == sorted((d.prob for d in dist), reverse=True)
    ref = direct_log_probs(notes, TEXT)[-1].exp()
    for d in dist:
        assert d.prob == pytest.approx(float(ref[notes.vocab.id_of(d.char)]), abs=1e-6)
    top3 = next_distribution(notes, TEXT, top_k=3)
    assert top3 == dist[:3]


def test_score_matches_an_independent_computation(notes: Predictor) -> None:
    result = notes.score(TEXT, alternatives=4)
    logp = direct_log_probs(notes, TEXT)
    ids = notes.vocab.encode(TEXT)
    assert len(result.steps) == len(TEXT) - 1
    nats = 0.0
    for step in result.steps:
        row = logp[step.position - 1]
        probs = row.exp()
        actual = int(ids[step.position])
        assert step.char == TEXT[step.position]
        assert step.prob == pytest.approx(float(probs[actual]), abs=1e-6)
        assert step.rank == 1 + int((probs > probs[actual]).sum())
        assert step.top_char == notes.vocab.chars[int(probs.argmax())]
        assert step.top_prob == pytest.approx(float(probs.max()), abs=1e-6)
        assert step.entropy_bits == pytest.approx(
            float(-(probs * row).sum() / math.log(2)), abs=1e-4
        )
        assert step.top[0].char == step.top_char and len(step.top) == 4
        nats -= float(row[actual])
    assert result.bits_per_char == pytest.approx(nats / len(result.steps) / math.log(2), rel=1e-5)
    worst = min(result.steps, key=lambda s: s.prob)
    assert (result.min_prob, result.min_position) == (worst.prob, worst.position)


def test_greedy_continuation_is_argmax_each_step(notes: Predictor) -> None:
    cont = notes.predict(TEXT, continuation_length=25, alternatives=2)
    text = TEXT
    for step in cont.steps:
        dist = next_distribution(notes, text)
        assert step.char == dist[0].char
        assert step.prob == pytest.approx(dist[0].prob, abs=1e-6)
        assert step.top[0].char == step.char and len(step.top) == 2
        text += step.char
    assert cont.continuation == text[len(TEXT) :]


def test_long_prompts_far_beyond_the_training_window(notes: Predictor) -> None:
    long_text = (TEXT * 400)[:12_000]  # training windows are 8 characters
    dist = next_distribution(notes, long_text)
    ids = notes.vocab.encode(long_text).unsqueeze(0)
    state = None
    with torch.no_grad():
        for chunk in ids.split(1000, dim=1):
            logits, state = notes.model(chunk, state)
    ref = torch.softmax(logits[0, -1], -1)
    assert dist[0].prob == pytest.approx(float(ref.max()), abs=1e-5)
    assert len(notes.score(long_text).steps) == 11_999
    assert next_distribution(notes, "t")[0].prob > 0  # and a single character


def test_evaluate_is_the_mean_cross_entropy(notes: Predictor) -> None:
    result = notes.evaluate(TEXT)
    logp = direct_log_probs(notes, TEXT)
    ids = notes.vocab.encode(TEXT)
    ref = -float(logp[torch.arange(len(TEXT) - 1), ids[1:]].mean())
    assert result.loss == pytest.approx(ref, rel=1e-5)
    assert result.bits_per_char == pytest.approx(ref / math.log(2), rel=1e-5)
    assert result.chars == len(TEXT) - 1


def test_sampling_is_reproducible_by_seed(notes: Predictor) -> None:
    a = notes.generate("the ", SampleConfig(length=80, seed=7)).text
    b = notes.generate("the ", SampleConfig(length=80, seed=7)).text
    c = notes.generate("the ", SampleConfig(length=80, seed=8)).text
    assert a == b and a != c and len(a) == 80
    assert len(notes.generate("", SampleConfig(length=30, seed=1)).text) == 30


def test_greedy_modes_agree(notes: Predictor) -> None:
    greedy = notes.predict("the ", continuation_length=40).continuation
    for config in (
        SampleConfig(length=40, temperature=0),
        SampleConfig(length=40, top_k=1, seed=3),
        SampleConfig(length=40, top_p=1e-6, seed=3),
        SampleConfig(length=40, top_p=1e-46, seed=3),  # far below float32's smallest
        SampleConfig(length=40, temperature=1e-45, seed=3),  # logits / T overflow float32
        SampleConfig(length=40, temperature=5e-324, seed=3),  # the smallest float64
    ):
        assert notes.generate("the ", config).text == greedy, config


def test_top_k_limits_the_choices(notes: Predictor) -> None:
    allowed = {d.char for d in next_distribution(notes, "the wren", top_k=2)}
    firsts = {
        notes.generate("the wren", SampleConfig(length=1, top_k=2, temperature=5.0, seed=s)).text
        for s in range(40)
    }
    assert firsts <= allowed and len(firsts) == 2


def test_bad_inputs_are_typed_errors(notes: Predictor) -> None:
    with pytest.raises(UnknownCharacterError, match="'€' at position 4"):
        next_distribution(notes, "the €")
    with pytest.raises(InputError, match="empty"):
        next_distribution(notes, "")
    with pytest.raises(InputError, match="at least 2"):
        notes.score("t")
    with pytest.raises(UnknownCharacterError):
        notes.generate("€", SampleConfig(length=3))
    with pytest.raises(UnknownCharacterError):  # checked when called, not when first read
        notes.sample("€", SampleConfig(length=3))
    bad_values = (
        {"temperature": -1},
        {"temperature": float("inf")},
        {"top_p": 0},
        {"top_p": 1.5},
        {"top_k": -1},
        {"length": -1},
        {"seed": -1},
        {"seed": 10**23},
        {"length": True},
    )
    for bad in bad_values:
        with pytest.raises(ConfigError):
            SampleConfig(**bad)  # type: ignore[arg-type]


def test_predict_batch_equals_predict(notes: Predictor) -> None:
    queries = [
        notes.query("the rain", top_k=5, continuation_length=40, alternatives=3),
        notes.query("a", top_k=0, continuation_length=0),
        notes.query("went out to the wood and", top_k=3, continuation_length=7, alternatives=0),
        notes.query("seed", top_k=1, continuation_length=1, alternatives=10),
        notes.query("the rain", top_k=5, continuation_length=40, alternatives=3),  # no cross-talk
        notes.query("x" * 1500, top_k=2, continuation_length=5, alternatives=1),  # read alone
    ]
    together = notes.predict_batch(queries)
    assert len(together) == len(queries)
    for q, got in zip(queries, together, strict=True):
        want = notes.predict(q.text, q.top_k, q.continuation_length, q.alternatives)
        assert [c.char for c in got.next] == [c.char for c in want.next]
        assert [c.prob for c in got.next] == pytest.approx([c.prob for c in want.next], abs=1e-5)
        assert got.continuation == want.continuation
        assert len(got.steps) == q.continuation_length
        for a, b in zip(got.steps, want.steps, strict=True):
            assert a.prob == pytest.approx(b.prob, abs=1e-5)
            assert [t.char for t in a.top] == [t.char for t in b.top]
            assert [t.prob for t in a.top] == pytest.approx([t.prob for t in b.top], abs=1e-5)


def test_queries_are_checked_when_made(notes: Predictor) -> None:
    with pytest.raises(InputError, match="text"):
        notes.query("the\u2603")
    with pytest.raises(ConfigError, match="continuation_length must be an integer >= 0, got -1"):
        notes.query("the", continuation_length=-1)
    with pytest.raises(ConfigError, match="top_k must be an integer >= 0, got -2"):
        notes.predict("the", top_k=-2)
    with pytest.raises(ConfigError, match="alternatives must be an integer >= 0"):
        notes.score("the", alternatives=-1)
