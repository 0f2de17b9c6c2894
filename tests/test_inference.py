import math

import pytest
import torch
import torch.nn.functional as F

from charlm.errors import ConfigError, InputError, UnknownCharacterError
from charlm.inference import Predictor, PredictQuery, SampleConfig

TEXT = "the wren came back to the woodpile. "


def direct_log_probs(p: Predictor, text: str) -> torch.Tensor:
    """Log-probabilities of each next character, from one plain forward pass."""
    ids = p.vocab.encode(text).unsqueeze(0)
    with torch.no_grad():
        logits, _ = p.model(ids)
    return F.log_softmax(logits[0].double(), -1)  # (T, V)


def test_next_distribution_is_the_softmax_of_the_last_logits(notes: Predictor) -> None:
    dist = notes.next_distribution(TEXT)
    assert len(dist) == len(notes.vocab)
    assert sum(d.prob for d in dist) == pytest.approx(1.0, abs=1e-5)
    assert [d.prob for d in dist] == sorted((d.prob for d in dist), reverse=True)
    ref = direct_log_probs(notes, TEXT)[-1].exp()
    for d in dist:
        assert d.prob == pytest.approx(float(ref[notes.vocab.id_of(d.char)]), abs=1e-6)
    top3 = notes.next_distribution(TEXT, top_k=3)
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
    cont = notes.continue_greedy(TEXT, 25, alternatives=2)
    text = TEXT
    for step in cont.steps:
        dist = notes.next_distribution(text)
        assert step.char == dist[0].char
        assert step.prob == pytest.approx(dist[0].prob, abs=1e-6)
        assert step.top[0].char == step.char and len(step.top) == 2
        text += step.char
    assert cont.text == text[len(TEXT) :]


def test_long_prompts_far_beyond_the_training_window(notes: Predictor) -> None:
    long_text = (TEXT * 400)[:12_000]  # training windows are 8 characters
    dist = notes.next_distribution(long_text)
    ids = notes.vocab.encode(long_text).unsqueeze(0)
    state = None
    with torch.no_grad():
        for chunk in ids.split(1000, dim=1):
            logits, state = notes.model(chunk, state)
    ref = torch.softmax(logits[0, -1], -1)
    assert dist[0].prob == pytest.approx(float(ref.max()), abs=1e-5)
    assert len(notes.score(long_text).steps) == 11_999
    assert notes.next_distribution("t")[0].prob > 0  # and a single character


def test_evaluate_is_the_mean_cross_entropy(notes: Predictor) -> None:
    result = notes.evaluate(TEXT)
    logp = direct_log_probs(notes, TEXT)
    ids = notes.vocab.encode(TEXT)
    ref = -float(logp[torch.arange(len(TEXT) - 1), ids[1:]].mean())
    assert result.loss == pytest.approx(ref, rel=1e-5)
    assert result.bits_per_char == pytest.approx(ref / math.log(2), rel=1e-5)
    assert result.chars == len(TEXT) - 1


def test_sampling_is_reproducible_by_seed(notes: Predictor) -> None:
    a = notes.generate("the ", SampleConfig(length=80, seed=7))
    b = notes.generate("the ", SampleConfig(length=80, seed=7))
    c = notes.generate("the ", SampleConfig(length=80, seed=8))
    assert a == b and a != c and len(a) == 80
    assert len(notes.generate("", SampleConfig(length=30, seed=1))) == 30


def test_greedy_modes_agree(notes: Predictor) -> None:
    greedy = notes.continue_greedy("the ", 40).text
    assert notes.generate("the ", SampleConfig(length=40, temperature=0)) == greedy
    assert notes.generate("the ", SampleConfig(length=40, top_k=1, seed=3)) == greedy
    assert notes.generate("the ", SampleConfig(length=40, top_p=1e-6, seed=3)) == greedy


def test_top_k_limits_the_choices(notes: Predictor) -> None:
    allowed = {d.char for d in notes.next_distribution("the wren", top_k=2)}
    firsts = {
        notes.generate("the wren", SampleConfig(length=1, top_k=2, temperature=5.0, seed=s))
        for s in range(40)
    }
    assert firsts <= allowed and len(firsts) == 2


def test_bad_inputs_are_typed_errors(notes: Predictor) -> None:
    with pytest.raises(UnknownCharacterError, match="'€' at position 4"):
        notes.next_distribution("the €")
    with pytest.raises(InputError, match="empty"):
        notes.next_distribution("")
    with pytest.raises(InputError, match="at least 2"):
        notes.score("t")
    with pytest.raises(UnknownCharacterError):
        notes.generate("€", SampleConfig(length=3))
    for bad in ({"temperature": -1}, {"top_p": 0}, {"top_p": 1.5}, {"top_k": -1}, {"length": -1}):
        with pytest.raises(ConfigError):
            SampleConfig(**bad)  # type: ignore[arg-type]


def test_predict_batch_equals_predict(notes: Predictor) -> None:
    queries = [
        PredictQuery("the rain", top_k=5, length=40, alternatives=3),
        PredictQuery("a", top_k=0, length=0),
        PredictQuery("went out to the wood and", top_k=3, length=7, alternatives=0),
        PredictQuery("seed", top_k=1, length=1, alternatives=10),
        PredictQuery("the rain", top_k=5, length=40, alternatives=3),  # again: no cross-talk
        PredictQuery("x" * 1500, top_k=2, length=5, alternatives=1),  # long: read on its own
    ]
    together = notes.predict_batch(queries)
    assert len(together) == len(queries)
    for q, got in zip(queries, together, strict=True):
        want = notes.predict(q.text, q.top_k, q.length, q.alternatives)
        assert [c.char for c in got.next] == [c.char for c in want.next]
        assert [c.prob for c in got.next] == pytest.approx([c.prob for c in want.next], abs=1e-5)
        assert got.continuation.text == want.continuation.text
        assert len(got.continuation.steps) == q.length
        for a, b in zip(got.continuation.steps, want.continuation.steps, strict=True):
            assert a.prob == pytest.approx(b.prob, abs=1e-5)
            assert [t.char for t in a.top] == [t.char for t in b.top]
            assert [t.prob for t in a.top] == pytest.approx([t.prob for t in b.top], abs=1e-5)


def test_predict_batch_checks_every_text(notes: Predictor) -> None:
    with pytest.raises(InputError, match="text"):
        notes.predict_batch([PredictQuery("the"), PredictQuery("the\u2603")])
    with pytest.raises(ConfigError):
        PredictQuery("the", length=-1)
