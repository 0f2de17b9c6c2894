"""The fused stepper against the model's own forward pass."""

import pytest
import torch

from charlm.inference import Predictor
from charlm.model import CharLSTM, ModelConfig
from charlm.stepper import Stepper
from charlm.vocab import Vocabulary


@pytest.mark.parametrize(("layers", "hidden"), [(1, 8), (2, 16), (3, 5)])
def test_steps_match_forward(layers: int, hidden: int) -> None:
    torch.manual_seed(layers)
    model = CharLSTM(
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
    model = CharLSTM(ModelConfig(vocab_size=5, embedding_dim=4, hidden_size=6)).eval()
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
    model = CharLSTM(ModelConfig(vocab_size=8, embedding_dim=4, hidden_size=12, num_layers=2))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)
    p = Predictor(model, vocab)
    cont = p.continue_greedy("abc", 50)
    ids = vocab.encode("abc").unsqueeze(0)
    with torch.inference_mode():
        logits, state = model(ids)
        text = ""
        for _ in range(50):
            nxt = int(logits[0, -1].argmax())
            text += vocab.chars[nxt]
            logits, state = model(torch.tensor([[nxt]]), state)
    assert cont.text == text
