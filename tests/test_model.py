import math

import pytest
import torch
import torch.nn.functional as F

from charlm.errors import ConfigError
from charlm.model import CharRNN, ModelConfig


def naive_forward(
    model: CharRNN,
    ids: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor,
    weights_hh: dict[int, torch.Tensor] | None = None,
    masks: dict[int, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A per-timestep LSTM written out by hand from the model's own weights (or, for the
    layers in `weights_hh`, the recurrent weights given there). `masks` (B, H) multiply
    the input of the layers they are keyed by, and with key L (the number of layers) the
    head's input, at every step."""
    masks = masks or {}
    cfg = model.config
    x = model.embedding.weight[ids]  # (B, T, E)
    h = [h0[layer] for layer in range(cfg.num_layers)]
    c = [c0[layer] for layer in range(cfg.num_layers)]
    outs = []
    for t in range(ids.shape[1]):
        inp = x[:, t]
        for layer in range(cfg.num_layers):
            inp = inp * masks[layer] if layer in masks else inp
            w_ih = getattr(model.lstm, f"weight_ih_l{layer}")
            w_hh = (weights_hh or {}).get(layer, getattr(model.lstm, f"weight_hh_l{layer}"))
            b = getattr(model.lstm, f"bias_ih_l{layer}") + getattr(model.lstm, f"bias_hh_l{layer}")
            gates = inp @ w_ih.T + h[layer] @ w_hh.T + b
            i, f, g, o = gates.chunk(4, dim=1)
            c[layer] = torch.sigmoid(f) * c[layer] + torch.sigmoid(i) * torch.tanh(g)
            h[layer] = torch.sigmoid(o) * torch.tanh(c[layer])
            inp = h[layer]
        inp = inp * masks[cfg.num_layers] if cfg.num_layers in masks else inp
        outs.append(inp @ model.head.weight.T + model.head.bias)
    return torch.stack(outs, 1), torch.stack(h), torch.stack(c)


def make(seed: int = 0, **kw: object) -> CharRNN:
    torch.manual_seed(seed)
    cfg = {"vocab_size": 7, "embedding_dim": 4, "hidden_size": 5, "num_layers": 2, **kw}
    return CharRNN(ModelConfig(**cfg))  # type: ignore[arg-type]


def test_forward_matches_naive_lstm() -> None:
    model = make().double().eval()
    ids = torch.randint(0, 7, (3, 6))
    h0 = torch.randn(2, 3, 5, dtype=torch.float64)
    c0 = torch.randn(2, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        logits, (h, c) = model(ids, (h0, c0))
        ref_logits, ref_h, ref_c = naive_forward(model, ids, h0, c0)
    assert logits.shape == (3, 6, 7) and h.shape == (2, 3, 5)
    torch.testing.assert_close(logits, ref_logits, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, ref_h, atol=1e-12, rtol=0)
    torch.testing.assert_close(c, ref_c, atol=1e-12, rtol=0)


def test_weight_drop_masks_the_recurrent_weights_while_training_only() -> None:
    model = make(weight_drop=0.5, hidden_size=6).double().train()
    ids = torch.randint(0, 7, (3, 6))
    h0 = torch.randn(2, 3, 6, dtype=torch.float64)
    c0 = torch.randn(2, 3, 6, dtype=torch.float64)
    torch.manual_seed(3)
    logits, (h, _) = model(ids, (h0, c0))
    torch.manual_seed(3)  # the same draws, made by hand: layer 0's mask, then layer 1's
    dropped = {
        layer: F.dropout(getattr(model.lstm, f"weight_hh_l{layer}"), 0.5, training=True)
        for layer in range(2)
    }
    ref_logits, ref_h, _ = naive_forward(model, ids, h0, c0, dropped)
    torch.testing.assert_close(logits, ref_logits, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, ref_h, atol=1e-12, rtol=0)
    for layer, masked in dropped.items():
        kept = getattr(model.lstm, f"weight_hh_l{layer}").detach() * 2  # scaled by 1/(1 - p)
        assert ((masked == 0) | torch.isclose(masked, kept)).all()
        assert 0.3 < (masked == 0).double().mean() < 0.7

    logits.sum().backward()  # a dropped connection gets no gradient, a kept one does
    for layer, masked in dropped.items():
        grad = getattr(model.lstm, f"weight_hh_l{layer}").grad
        assert grad is not None
        assert (grad[masked == 0] == 0).all() and (grad[masked != 0] != 0).all()

    model.eval()  # evaluation reads the weights as they are, with no draw
    with torch.no_grad():
        logits, _ = model(ids, (h0, c0))
        plain, _, _ = naive_forward(model, ids, h0, c0)
    torch.testing.assert_close(logits, plain, atol=1e-12, rtol=0)


def _drawn_masks(batch: int, width: int, p: float, layers: range) -> dict[int, torch.Tensor]:
    """Masks drawn as the model draws them: one (B, H) per layer, bottom up, then the
    head's; kept units scaled by 1/(1 - p)."""
    return {
        layer: torch.empty(batch, width, dtype=torch.float64).bernoulli_(1 - p) / (1 - p)
        for layer in layers
    }


@pytest.mark.parametrize("layers", [1, 3])
def test_dropout_drops_the_same_units_at_every_step_while_training_only(layers: int) -> None:
    model = make(dropout=0.5, hidden_size=6, num_layers=layers).double().train()
    ids = torch.randint(0, 7, (4, 9))
    h0 = torch.randn(layers, 4, 6, dtype=torch.float64)
    c0 = torch.randn(layers, 4, 6, dtype=torch.float64)
    torch.manual_seed(5)
    logits, (h, c) = model(ids, (h0, c0))
    torch.manual_seed(5)  # the same draws by hand: layer 1's mask, layer 2's, the head's
    masks = _drawn_masks(4, 6, 0.5, range(1, layers + 1))
    ref_logits, ref_h, ref_c = naive_forward(model, ids, h0, c0, masks=masks)
    torch.testing.assert_close(logits, ref_logits, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, ref_h, atol=1e-12, rtol=0)
    torch.testing.assert_close(c, ref_c, atol=1e-12, rtol=0)
    for mask in masks.values():  # the masks are real: about half of the units dropped
        assert ((mask == 0) | (mask == 2)).all() and 0.2 < (mask == 0).double().mean() < 0.8

    logits[0].sum().backward()  # a unit stream 0 drops before the head carries nothing
    grad, dropped = model.head.weight.grad, masks[layers][0] == 0
    assert grad is not None and dropped.any() and not dropped.all()
    assert (grad[:, dropped] == 0).all() and (grad[:, ~dropped] != 0).all()

    model.eval()  # evaluation reads every unit, with no draw
    with torch.no_grad():
        logits, _ = model(ids, (h0, c0))
        plain, _, _ = naive_forward(model, ids, h0, c0)
    torch.testing.assert_close(logits, plain, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_dropout_between_gru_and_rnn_layers_is_the_stacked_layers_masked(cell: str) -> None:
    model = make(cell=cell, dropout=0.3, num_layers=2).double().train()
    ids, h0 = torch.randint(0, 7, (3, 8)), torch.randn(2, 3, 5, dtype=torch.float64)
    torch.manual_seed(9)
    logits, (h, c) = model(ids, (h0, h0[:, :, :0]))
    torch.manual_seed(9)
    masks = _drawn_masks(3, 5, 0.3, range(1, 3))
    one = {"gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](4, 5, batch_first=True).double()
    x, hs = model.embedding(ids), []
    for layer in range(2):  # each layer alone, as a one-layer module of its own weights
        one.input_size = x.shape[2]
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(one, f"{name}_l0", getattr(model.recurrent, f"{name}_l{layer}"))
        x = x * masks[layer].unsqueeze(1) if layer else x
        x, h_layer = one(x, h0[layer : layer + 1])
        hs.append(h_layer)
    ref = model.head(x * masks[2].unsqueeze(1))
    torch.testing.assert_close(logits, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, torch.cat(hs), atol=1e-12, rtol=0)
    assert c.shape == (2, 3, 0)


def test_float32_forward_within_1e6_of_float64_reference() -> None:
    model = make(seed=1)
    ids = torch.randint(0, 7, (2, 20))
    with torch.no_grad():
        logits, _ = model(ids)
        ref, _, _ = naive_forward(
            model.double(), ids, *[torch.zeros(2, 2, 5, dtype=torch.float64)] * 2
        )
    assert float((logits.double() - ref).abs().max()) < 1e-6


@pytest.mark.slow
def test_gradcheck_through_the_loss() -> None:
    model = make(seed=2).double()
    ids = torch.randint(0, 7, (2, 3))
    targets = torch.randint(0, 7, (2, 3))
    params = [p for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]

    def loss_fn(*flat: torch.Tensor) -> torch.Tensor:
        state = dict(zip(names, flat, strict=True))
        logits, _ = torch.func.functional_call(model, state, (ids,))
        return F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1))

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in params)
    assert torch.autograd.gradcheck(loss_fn, inputs, eps=1e-6, atol=1e-5)


def test_state_continuity_full_chunks_and_one_char_at_a_time() -> None:
    model = make(seed=3).eval()
    ids = torch.randint(0, 7, (2, 12))
    with torch.no_grad():
        full, (h_full, c_full) = model(ids)
        pieces, state = [], None
        for chunk in ids.split(4, dim=1):
            out, state = model(chunk, state)
            pieces.append(out)
        steps, state1 = [], None
        for t in range(12):
            out, state1 = model(ids[:, t : t + 1], state1)
            steps.append(out)
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-6, rtol=0)
    assert state is not None and state1 is not None
    torch.testing.assert_close(state1[0], h_full, atol=1e-6, rtol=0)
    torch.testing.assert_close(state1[1], c_full, atol=1e-6, rtol=0)


def test_state_is_returned_not_stored() -> None:
    model = make(seed=4).eval()
    a, b = torch.randint(0, 7, (1, 5)), torch.randint(0, 7, (1, 5))
    with torch.no_grad():
        alone, _ = model(a)
        _, sb = model(b)  # another caller in between
        again, _ = model(a)
        _, sa = model(a[:, :3])
        _, _ = model(b, sb)
        rest, _ = model(a[:, 3:], sa)
    torch.testing.assert_close(alone, again, atol=0, rtol=0)
    torch.testing.assert_close(rest, alone[:, 3:], atol=1e-6, rtol=0)


@pytest.mark.parametrize("vocab", [2, 26, 65, 200])
def test_initial_loss_is_close_to_ln_v(vocab: int) -> None:
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=vocab, embedding_dim=16, hidden_size=64))
    ids = torch.randint(0, vocab, (8, 64))
    logits, _ = model(ids[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))
    assert abs(loss.item() - math.log(vocab)) < 0.2


def test_softmax_is_not_applied_inside_the_model() -> None:
    # Logits are unbounded: large head weights must give probabilities near 1, which a
    # softmax over tanh-bounded LSTM outputs could not.
    model = make(seed=5, num_layers=1).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([40.0, 0, 0, 0, 0, 0, 0]))
        logits, _ = model(torch.zeros(1, 1, dtype=torch.int64))
    assert float(torch.softmax(logits[0, 0], -1)[0]) > 1 - 1e-12


def test_config_validation_and_round_trip() -> None:
    cfg = ModelConfig(vocab_size=3, hidden_size=8, num_layers=1, dropout=0.2, weight_drop=0.3)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    older = {k: v for k, v in cfg.to_dict().items() if k != "weight_drop"}
    assert ModelConfig.from_dict(older).weight_drop == 0.0  # checkpoints written before it
    with pytest.raises(ConfigError, match="unknown keys: bogus"):
        ModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    for bad in (
        {"hidden_size": 0},
        {"num_layers": -1},
        {"dropout": 1.0},
        {"vocab_size": 1.5},
        {"weight_drop": 1.0},
    ):
        with pytest.raises(ConfigError):
            ModelConfig(**{**cfg.to_dict(), **bad})
