"""The GRU and simple RNN cells: the math against hand-written loops, and every path a
model takes (training, resume, checkpoint, inference, CLI, HTTP) with each cell."""

import json
from pathlib import Path

import httpx2 as httpx
import pytest
import torch
import torch.nn.functional as F

from charlm import checkpoint
from charlm.cli import main
from charlm.errors import ConfigError
from charlm.inference import Predictor, SampleConfig
from charlm.inference.stepper import Stepper
from charlm.model import CELLS, CharRNN, ModelConfig
from charlm.runlog import TrainRow, read_metrics
from charlm.training import fit

from .conftest import CORPORA
from .serving import Server

NEW_CELLS = ["gru", "rnn"]


def naive_forward(
    model: CharRNN, ids: torch.Tensor, h0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A per-timestep GRU or tanh RNN written out by hand from the model's weights,
    with PyTorch's documented equations (the GRU's reset gate scales W_hn h + b_hn)."""
    cfg = model.config
    cells = model.recurrent
    x = model.embedding.weight[ids]  # (B, T, E)
    h = [h0[layer] for layer in range(cfg.num_layers)]
    outs = []
    for t in range(ids.shape[1]):
        inp = x[:, t]
        for layer in range(cfg.num_layers):
            w_ih, w_hh = (getattr(cells, f"weight_{k}_l{layer}") for k in ("ih", "hh"))
            b_ih, b_hh = (getattr(cells, f"bias_{k}_l{layer}") for k in ("ih", "hh"))
            gi, gh = inp @ w_ih.T + b_ih, h[layer] @ w_hh.T + b_hh
            if cfg.cell == "gru":
                i_r, i_z, i_n = gi.chunk(3, dim=1)
                h_r, h_z, h_n = gh.chunk(3, dim=1)
                r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h[layer] = (1 - z) * n + z * h[layer]
            else:
                h[layer] = torch.tanh(gi + gh)
            inp = h[layer]
        outs.append(inp @ model.head.weight.T + model.head.bias)
    return torch.stack(outs, 1), torch.stack(h)


def make(cell: str, seed: int = 0, **kw: object) -> CharRNN:
    torch.manual_seed(seed)
    cfg = {"vocab_size": 7, "embedding_dim": 4, "hidden_size": 5, "num_layers": 2, **kw}
    return CharRNN(ModelConfig(cell=cell, **cfg))  # type: ignore[arg-type]


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_forward_matches_the_naive_loop(cell: str) -> None:
    model = make(cell).double().eval()
    ids = torch.randint(0, 7, (3, 6))
    h0 = torch.randn(2, 3, 5, dtype=torch.float64)
    with torch.no_grad():
        logits, (h, c) = model(ids, (h0, torch.zeros(2, 3, 0, dtype=torch.float64)))
        ref_logits, ref_h = naive_forward(model, ids, h0)
    torch.testing.assert_close(logits, ref_logits, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, ref_h, atol=1e-12, rtol=0)
    assert c.shape == (2, 3, 0)  # no cell state, by the state's convention


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_gradients_match_finite_differences(cell: str) -> None:
    model = make(cell, seed=2).double()
    ids, targets = torch.randint(0, 7, (2, 3)), torch.randint(0, 7, (2, 3))
    names = [n for n, _ in model.named_parameters()]

    def loss_fn(*flat: torch.Tensor) -> torch.Tensor:
        logits, _ = torch.func.functional_call(model, dict(zip(names, flat, strict=True)), (ids,))
        return F.cross_entropy(logits.reshape(-1, 7), targets.reshape(-1))

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())
    assert torch.autograd.gradcheck(loss_fn, inputs, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("cell", list(CELLS))
def test_state_carries_across_calls_and_batched_reads_match(cell: str) -> None:
    model = make(cell, seed=3).eval()
    ids = torch.randint(0, 7, (2, 12))
    with torch.no_grad():
        full, (h_full, c_full) = model(ids)
        steps, state = [], None
        for t in range(12):
            out, state = model(ids[:, t : t + 1], state)
            steps.append(out)
        last, (h_b, _) = model.read_batch([ids[0], ids[1, :5]])
        short, (h_s, _) = model(ids[1:, :5])
    assert state is not None
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-6, rtol=0)
    torch.testing.assert_close(state[0], h_full, atol=1e-6, rtol=0)
    assert c_full.shape == (2, 2, 5 if cell == "lstm" else 0) == state[1].shape
    torch.testing.assert_close(last[0], full[0, -1], atol=1e-6, rtol=0)
    torch.testing.assert_close(last[1], short[0, -1], atol=1e-6, rtol=0)
    torch.testing.assert_close(h_b[:, 1], h_s[:, 0], atol=1e-6, rtol=0)
    expected = model.config.parameter_shapes()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    assert all(k.startswith((cell + ".", "embedding.", "head.")) for k in expected)


def test_config_checks_the_cell() -> None:
    with pytest.raises(ConfigError, match="model cell must be one of"):
        ModelConfig(vocab_size=3, cell="transformer")
    assert ModelConfig.from_dict({"vocab_size": 3}).cell == "lstm"  # older checkpoints


@pytest.mark.parametrize("cell", NEW_CELLS)
def test_weight_drop_works_for_every_cell(cell: str) -> None:
    model = make(cell, weight_drop=0.5)
    ids = torch.randint(0, 7, (2, 8))
    model.eval()
    with torch.no_grad():
        a, _ = model(ids)
        b, _ = model(ids)
    torch.testing.assert_close(a, b)  # evaluation is unmasked
    model.train()
    torch.manual_seed(0)
    logits, _ = model(ids)
    assert not torch.allclose(logits, a)
    logits.sum().backward()
    assert model.recurrent.weight_hh_l0.grad is not None


def _two_symbol_run(tmp: Path, name: str, cell: str, **train: object) -> Path:
    corpus = tmp / "ab.txt"
    corpus.write_text("ab" * 600)
    fit(
        corpus,
        tmp / name,
        model_overrides={"cell": cell, "hidden_size": 16, "embedding_dim": 8},
        train_overrides={"max_steps": 150, "seq_len": 16, "eval_interval": 25, **train},
        plots=False,
    )
    return tmp / name


@pytest.mark.slow
@pytest.mark.parametrize("cell", NEW_CELLS)
def test_each_cell_learns_and_round_trips_through_its_checkpoint(tmp_path: Path, cell: str) -> None:
    directory = _two_symbol_run(tmp_path, "run", cell)
    ckpt = checkpoint.load(directory)
    assert ckpt.model_config.cell == cell
    predictor = Predictor.from_checkpoint(directory)
    assert predictor.card.architecture["cell"] == cell
    p = predictor.predict("abab", top_k=1, continuation_length=6)
    assert p.next[0].char == "a" and p.next[0].prob > 0.99
    assert p.continuation == "ababab"
    # Generation steps through the model's own forward pass and agrees with it.
    ids = predictor.vocab.encode("abab").unsqueeze(0)
    with torch.no_grad():
        logits, _ = predictor.model(ids)
    probs = torch.softmax(logits[0, -1], -1)
    assert abs(p.next[0].prob - float(probs.max())) < 1e-6
    g = predictor.generate("ab", SampleConfig(length=8, temperature=0.0))
    assert g.text == "abababab"
    with pytest.raises(ConfigError, match="LSTM cells"):
        Stepper(predictor.model)
    with pytest.raises(ConfigError, match="int8 steps are the LSTM stepper's"):
        Predictor(predictor.model, predictor.vocab, step_weights="int8")
    # Diagnostics name the cell's layers and measure no gates.
    rows = [r for r in read_metrics(directory / "metrics.jsonl") if isinstance(r, TrainRow)]
    norms = next(r.signals.grad_norms for r in rows if r.signals.grad_norms is not None)
    assert f"{cell}.l0" in norms and rows[-1].signals.gates is None


def test_gru_resumed_run_ends_where_the_uninterrupted_run_ends(tmp_path: Path) -> None:
    straight = _two_symbol_run(tmp_path, "straight", "gru", max_steps=40)
    first = _two_symbol_run(tmp_path, "resumed", "gru", max_steps=20)
    assert checkpoint.load(first).summary["step"] == 20
    fit(tmp_path / "ab.txt", first, resume=True, train_overrides={"max_steps": 40}, plots=False)
    a, b = checkpoint.load(straight).read_weights(), checkpoint.load(first).read_weights()
    assert a.keys() == b.keys() and all(k.startswith(("gru.", "embedding", "head")) for k in a)
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name
    with pytest.raises(ConfigError, match="cell"):
        fit(
            tmp_path / "ab.txt",
            first,
            resume=True,
            model_overrides={"cell": "rnn"},
            train_overrides={"max_steps": 60},
            plots=False,
        )


@pytest.mark.server
@pytest.mark.slow  # real training runs and a real server process
def test_cells_through_the_cli_and_http(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "checkpoints"
    for cell in CELLS:
        code = main(
            ["train", str(CORPORA / "alphabet.txt"), "--cell", cell, "--name", cell,
             "--checkpoints-dir", str(root), "--quiet", "--max-steps", "300"]
        )  # fmt: skip
        assert code == 0
    capsys.readouterr()
    assert main(["info", "gru", "--checkpoints-dir", str(root)]) == 0
    assert "1 x 64 GRU" in capsys.readouterr().out
    assert main(["predict", "rnn", "abc", "--json", "--checkpoints-dir", str(root)]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["next"][0]["char"] == "d" and cli["next"][0]["prob"] > 0.9
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(CORPORA / "alphabet.txt"), "--cell", "cnn", "--quiet"])
    assert exit_.value.code == 2
    assert "invalid choice: 'cnn'" in capsys.readouterr().err
    server = Server(root)
    try:
        for cell in CELLS:
            r = httpx.post(
                server.url + "/predict",
                json={"model": cell, "text": "xyz", "continuation_length": 5},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["continuation"] == "abcde"
            info = httpx.get(f"{server.url}/models/{cell}", timeout=30).json()
            assert info["architecture"]["cell"] == cell
            gen = httpx.post(
                server.url + "/generate",
                json={"model": cell, "prompt": "v", "length": 4, "temperature": 0},
                timeout=30,
            )
            assert gen.status_code == 200 and gen.json()["text"] == "wxyz", gen.text
    finally:
        server.stop()
