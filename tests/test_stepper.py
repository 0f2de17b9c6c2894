"""The fused stepper against the model's own forward pass."""

import pytest
import torch

from charlm.errors import ConfigError
from charlm.inference import Predictor, Stepper
from charlm.model import CharRNN, ModelConfig
from charlm.runtime import bf16_steps_supported, int8_steps_supported
from charlm.vocab import Vocabulary


@pytest.mark.parametrize(("layers", "hidden"), [(1, 8), (2, 16), (3, 5)])
def test_steps_match_forward(layers: int, hidden: int) -> None:
    torch.manual_seed(layers)
    model = CharRNN(
        ModelConfig(vocab_size=11, embedding_dim=6, hidden_size=hidden, num_layers=layers)
    ).eval()
    with torch.no_grad():  # make the recurrence matter: larger weights than at init
        for p in model.parameters():
            p.mul_(3.0)
    ids = torch.randint(0, 11, (1, 40))
    with torch.inference_mode():
        _, state = model(ids[:, :10])
        full, (h_full, c_full) = model(ids)
        session = Stepper(model).session(state)
        for t in range(10, 40):
            logits = session.step(int(ids[0, t]))
            torch.testing.assert_close(logits, full[0, t], atol=1e-5, rtol=1e-5)
        h, c = session.state()
    torch.testing.assert_close(h, h_full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c, c_full, atol=1e-5, rtol=1e-5)


def test_sessions_are_independent() -> None:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=5, embedding_dim=4, hidden_size=6)).eval()
    stepper = Stepper(model)
    with torch.inference_mode():
        zero = model.initial_state(1)
        a, b = stepper.session(zero), stepper.session(zero)
        first = a.step(1).clone()
        b.step(2)
        b.step(3)
        again = stepper.session(zero).step(1)
    torch.testing.assert_close(first, again, atol=0, rtol=0)


def test_predictor_greedy_matches_naive_stepping() -> None:
    torch.manual_seed(1)
    vocab = Vocabulary.from_text("abcdefgh")
    model = CharRNN(ModelConfig(vocab_size=8, embedding_dim=4, hidden_size=12, num_layers=2))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    p = Predictor(model, vocab)
    cont = p.predict("abc", continuation_length=50)
    ids = vocab.encode("abc").unsqueeze(0)
    with torch.inference_mode():
        logits, state = model(ids)
        text = ""
        for _ in range(50):
            nxt = int(logits[0, -1].argmax())
            text += vocab.chars[nxt]
            logits, state = model(torch.tensor([[nxt]]), state)
    assert cont.continuation == text


@pytest.mark.parametrize("hidden", [16, 300])  # 300: large enough for the oneDNN path
def test_batched_steps_match_single_steps(hidden: int) -> None:
    torch.manual_seed(2)
    model = CharRNN(
        ModelConfig(vocab_size=9, embedding_dim=5, hidden_size=hidden, num_layers=3)
    ).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    stepper = Stepper(model)
    ids = torch.randint(0, 9, (4, 30))
    with torch.inference_mode():
        _, (h, c) = model(ids[:, :5])
        together = stepper.session((h, c))
        alone = [stepper.session((h[:, b : b + 1], c[:, b : b + 1])) for b in range(4)]
        for t in range(5, 30):
            batch = together.step_batch(ids[:, t])
            for b in range(4):
                single = alone[b].step(int(ids[b, t]))
                torch.testing.assert_close(batch[b], single, atol=1e-5, rtol=1e-5)
        _, (h_full, c_full) = model(ids)
        h_b, c_b = together.state()
    torch.testing.assert_close(h_b, h_full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c_b, c_full, atol=1e-5, rtol=1e-5)


def test_read_batch_matches_separate_reads() -> None:
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(vocab_size=7, embedding_dim=4, hidden_size=10)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    seqs = [torch.randint(0, 7, (n,)) for n in (1, 17, 4, 9, 17)]
    with torch.inference_mode():
        logits, (h, c) = model.read_batch(seqs)
        for b, s in enumerate(seqs):
            alone, (h1, c1) = model(s.unsqueeze(0))
            torch.testing.assert_close(logits[b], alone[0, -1], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(h[:, b], h1[:, 0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(c[:, b], c1[:, 0], atol=1e-5, rtol=1e-5)
        # and they continue from there, stepped together
        nxt = torch.randint(0, 7, (5,))
        stepped = Stepper(model).session((h, c)).step_batch(nxt)
        for b, s in enumerate(seqs):
            alone, _ = model(torch.cat([s, nxt[b : b + 1]]).unsqueeze(0))
            torch.testing.assert_close(stepped[b], alone[0, -1], atol=1e-5, rtol=1e-5)


TEXT = "the rain came down on the wood and the seeds"


def _worst_difference(notes: Predictor, weights: str) -> float:
    """Largest difference between the float32 stepper's next-character probabilities
    and those of the stepper with `weights`, along TEXT."""
    model = notes.model
    zero = model.initial_state(1)
    a = Stepper(model).session(zero)
    b = Stepper(model, weights=weights).session(zero)
    worst = 0.0
    with torch.inference_mode():
        for i in notes.vocab.encode(TEXT).tolist():
            pa, pb = torch.softmax(a.step(i), -1), torch.softmax(b.step(i), -1)
            worst = max(worst, float((pa - pb).abs().max()))
    return worst


@pytest.mark.skipif(not bf16_steps_supported(), reason="no bfloat16 in oneDNN on this CPU")
def test_bf16_steps_stay_close_to_float32(notes: Predictor) -> None:
    assert 0 < _worst_difference(notes, "bf16") < 2e-2  # close, and not secretly float32


@pytest.mark.skipif(not int8_steps_supported(), reason="no FBGEMM in this torch build")
def test_int8_steps_stay_close_to_float32(notes: Predictor) -> None:
    assert 0 < _worst_difference(notes, "int8") < 5e-2  # close, and not secretly float32
    # batched steps agree with single ones
    int8 = Stepper(notes.model, weights="int8")
    zero = notes.model.initial_state(1)
    with torch.inference_mode():
        batch = int8.session((zero[0].repeat(1, 3, 1), zero[1].repeat(1, 3, 1)))
        single = int8.session(zero)
        for i in notes.vocab.encode(TEXT).tolist()[:10]:
            rows = batch.step_batch(torch.tensor([i, i, i]))
            one = single.step(i)
        torch.testing.assert_close(rows, one.expand(3, -1), atol=1e-4, rtol=0)


def test_an_unknown_kind_of_step_weights_is_refused(notes: Predictor) -> None:
    with pytest.raises(ConfigError, match="weights"):
        Stepper(notes.model, weights="int4")
    with pytest.raises(ConfigError, match="step_weights"):
        Predictor(notes.model, notes.vocab, step_weights="fp16")
