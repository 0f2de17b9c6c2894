"""The recurrent-nets lab: its batched models against PyTorch's modules, Keras's
initialisation, its broken set-ups failing the way their posts say and its fixes
working, what the watcher says about each, and `charlm lab` end to end."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from charlm.cli import main
from charlm.diagnostics.references import bounded_softmax_cap, bounded_softmax_floor
from charlm.lab import alphabet_head, counting, functions, latching
from charlm.lab.batched import BatchedCells, key_gradient

MODULES = {"lstm": nn.LSTM, "rnn": nn.RNN}


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """As `charlm lab` runs its experiments."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("cell", list(MODULES))
def test_batched_cells_are_independent_pytorch_modules(cell: str) -> None:
    torch.manual_seed(0)
    batched = BatchedCells(cell, 3, 2, 5, 4).double()
    modules = [MODULES[cell](2, 5, batch_first=True).double() for _ in range(3)]
    for i, m in enumerate(modules):
        batched.load_module(i, m)
    x = torch.randn(3, 4, 7, 2, dtype=torch.float64)
    targets = torch.randint(0, 4, (3, 4))
    logits = batched(x)
    F.cross_entropy(logits[1], targets[1]).backward()  # model 1's loss only
    for i, m in enumerate(modules):
        out, _ = m(x[i])
        ref = out[:, -1] @ batched.head_w[i] + batched.head_b[i, 0]
        torch.testing.assert_close(logits[i], ref, atol=1e-12, rtol=0)
        recurrent, head = batched.export(i)  # and back out as PyTorch's modules
        out, _ = recurrent.double()(x[i])
        torch.testing.assert_close(head.double()(out[:, -1]), logits[i], atol=1e-12, rtol=0)
    ref_logits = modules[1](x[1])[0][:, -1]
    ref_logits = ref_logits @ batched.head_w[1].detach() + batched.head_b[1, 0].detach()
    F.cross_entropy(ref_logits, targets[1]).backward()
    assert batched.w_hh.grad is not None and modules[1].weight_hh_l0.grad is not None
    torch.testing.assert_close(batched.w_hh.grad[1], modules[1].weight_hh_l0.grad.T)
    assert float(batched.w_hh.grad[0].abs().max()) == 0.0 == float(batched.w_hh.grad[2].abs().max())


def test_keras_initialisation() -> None:
    rng = torch.Generator().manual_seed(0)
    lstm = BatchedCells("lstm", 4, 1, 1, 2)
    before = lstm.b_ih[2:].clone()
    lstm.init_keras([0, 1], rng)
    for r in (0, 1):  # unit_forget_bias: the forget gate's bias 1, the others 0
        assert (lstm.b_ih[r] + lstm.b_hh[r]).flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
        assert abs(float(lstm.w_hh[r].norm()) - 1) < 1e-6  # orthogonal: a unit row
        assert float(lstm.w_in[r].abs().max()) <= math.sqrt(6 / 5)  # glorot, fan 1 + 4
        assert float(lstm.head_w[r].abs().max()) <= math.sqrt(6 / 3) and not lstm.head_b[r].any()
    assert torch.equal(lstm.b_ih[2:], before)  # PyTorch's, left alone
    rnn = BatchedCells("rnn", 8, 1, 1, 2)
    rnn.init_keras(list(range(8)), rng)
    assert set(rnn.w_hh.abs().flatten().tolist()) == {1.0}  # one unit: +1 or -1
    wide = BatchedCells("lstm", 1, 1, 16, 2)
    wide.init_keras([0], rng)
    torch.testing.assert_close(wide.w_hh[0] @ wide.w_hh[0].T, torch.eye(16), atol=1e-5, rtol=0)


def test_the_softmax_of_bounded_outputs() -> None:
    for k in (2, 26, 56):
        best = torch.full((k,), -1.0)
        best[0] = 1.0
        assert abs(float(torch.softmax(best, 0)[0]) - bounded_softmax_cap(k)) < 1e-6
        loss = float(F.cross_entropy(best[None], torch.tensor([0])))
        assert abs(loss - bounded_softmax_floor(k)) < 1e-6
        outputs = torch.rand(20_000, k) * 2 - 1  # no output in [-1, 1] gets below the floor
        losses = F.cross_entropy(outputs, torch.zeros(20_000, dtype=torch.long), reduction="none")
        assert float(losses.min()) >= bounded_softmax_floor(k) - 1e-6
    assert 1.47 < bounded_softmax_floor(26) < 1.48 and 0.22 < bounded_softmax_cap(26) < 0.23


@pytest.mark.slow
def test_alphabet_head_as_posted_is_capped_and_the_projection_is_certain() -> None:
    setups = list(alphabet_head.SETUPS)
    broken = alphabet_head.one_run(26, 26, setups[0], 0, 400)
    fixed = alphabet_head.one_run(26, 26, setups[-1], 0, 400)
    assert broken["loss"] > bounded_softmax_floor(26)
    assert broken["p_right_max"] <= bounded_softmax_cap(26)
    assert broken["watcher"] == "bounded_softmax"
    assert fixed["p_right"] > 0.95 and fixed["top1"] == 1.0 and fixed["watcher"] == "nothing"


@pytest.mark.slow
def test_counting_without_zero_grad_swings_and_with_it_fits() -> None:
    broken = counting.one_run("as posted: no zero_grad", 0, 300)
    fixed = counting.one_run("zero_grad every step (the fix)", 0, 300)
    assert fixed["loss"] < 0.001 and fixed["largest_error"] < 0.05
    assert broken["loss"] > 100 * fixed["loss"] and broken["loss"] > 5 * broken["lowest_loss"]
    assert broken["last_grad_norm"] > 10 * broken["first_grad_norm"]  # the sum grows
    assert broken["watcher"] == "gradients_accumulate" and fixed["watcher"] == "nothing"


@pytest.mark.slow
def test_function_recognition_as_posted_and_with_the_posts_fix() -> None:
    posted = functions.one_run("as posted: k and b redrawn, no backward", 0, 50)
    assert posted["accuracy"] == posted["untrained_accuracy"]  # nothing ever changed
    assert posted["watcher"] == "no_gradient"
    fixed = functions.one_run("k and b fixed at the start (the post's fix)", 0, 3000)
    assert fixed["acc_1"] == fixed["accuracy"] == 1.0  # one point names the function
    assert fixed["redrawn_accuracy"] < 0.9  # a curve of each learned, not the functions
    assert fixed["watcher"] == "nothing"


def test_function_sequences() -> None:
    points, classes = functions.sequences(300, 8, torch.Generator().manual_seed(0), (0.5, 2.0))
    x, y = points[..., 0], points[..., 1]
    assert points.shape == (300, 8, 2) and set(classes.tolist()) == {0, 1, 2}
    expected = torch.stack([x, x * x, x.sqrt()])[classes, torch.arange(300)] * 0.5 + 2.0
    torch.testing.assert_close(y, expected)
    root = classes == 2
    assert float(x[root].max()) <= 10 and float(x[~root].max()) > 10 and float(x.min()) >= 5


def test_latching_splits() -> None:
    rng = torch.Generator().manual_seed(0)
    x, y = latching.lines(7, 1000, rng)
    assert x.shape == (1000, 7) and (y[:500] == 1).all() and (y[500:] == 0).all()
    assert ((x[:, 0] > 0) == (y == 1)).all() and float(x[:, 1:].std()) < 0.11
    _, y_train, _, y_val = latching.split(x, y, "tail", rng)
    assert (y_val == 0).all() and len(y_val) == 200  # Keras's validation_split: one class
    assert float(y_train.float().mean()) == 0.625
    _, y_train, _, y_val = latching.split(x, y, "shuffled", rng)
    assert 0.4 < float(y_val.float().mean()) < 0.6 and len(y_train) == 800


def test_latching_keras_initialisation_carries_the_first_input() -> None:
    rows, _ = latching.latch_point("rnn", 1, 20, 4, ("shuffled",), epochs=1, n=320)
    rows += latching.latch_point("lstm", 1, 20, 4, ("shuffled",), epochs=1, n=320)[0]

    def median(cell: str, init: str, key: str) -> float:
        values = sorted(r[key] for r in rows if (r["cell"], r["init"]) == (cell, init))
        return float(values[len(values) // 2])

    # Keras's orthogonal recurrent weight (+-1) passes the first input on; PyTorch's
    # uniform one (|w| < 1) loses it in 20 steps
    assert median("rnn", "keras", "key_grad_start") > 1e3 * median(
        "rnn", "pytorch", "key_grad_start"
    )
    # Keras's forget bias of 1 holds every LSTM's forget gate at sigmoid(1) at the start;
    # PyTorch's random biases scatter it
    keras = [r["forget_start"] for r in rows if (r["cell"], r["init"]) == ("lstm", "keras")]
    pytorch = [r["forget_start"] for r in rows if (r["cell"], r["init"]) == ("lstm", "pytorch")]
    sigmoid_1 = 1 / (1 + math.exp(-1))
    assert all(abs(f - sigmoid_1) < 0.01 for f in keras), keras
    assert max(abs(f - sigmoid_1) for f in pytorch) > 0.1, pytorch


@pytest.mark.slow
def test_the_watcher_on_latching() -> None:
    rows, said = latching.latch_point("rnn", 1, 5, 2, watch=True, n=2000)
    by_setup = {s.setup: s for s in said}
    assert len(by_setup) == 4
    for s in said:
        names = [f.name for f in s.findings]
        if "tail split" in s.setup:
            assert names[0] == "split_mismatch"
        elif s.run.endswith("test accuracy 1.00"):  # shuffled, and latched
            assert names == [], s.markdown()
    keras_shuffled = by_setup["rnn, 1 unit, Keras's initialisation, shuffled split"]
    assert keras_shuffled.run.endswith("test accuracy 1.00")  # one such run latched
    assert all(r["epochs"] == 5 for r in rows) and len(rows) == 8


def test_key_gradient_vanishes_for_a_simple_rnn_over_a_long_sequence() -> None:
    torch.manual_seed(0)
    x, y = latching.lines(50, 16, torch.Generator().manual_seed(0))
    model = BatchedCells("rnn", 4, 1, 16, 2)
    ratio = key_gradient(model, x.view(1, 16, 50, 1).expand(4, -1, -1, -1), y.expand(4, -1))
    assert float(ratio.max()) < 1e-6


@pytest.mark.slow
def test_lab_command_writes_its_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lab"
    assert main(["lab", "counting", "--quick", "--repeats", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| set-up |" in text and "charlm lab counting --quick --repeats 1" in text
    assert "### What the watcher said" in text
    assert "- **as posted: no zero_grad** (seed 0): `gradients_accumulate` at step 4:" in text
    assert "- **zero_grad every step (the fix)** (seed 0): nothing." in text
    assert sorted(p.name for p in out.iterdir()) == [
        "counting.csv", "counting.json", "counting.md", "counting.png",
    ]  # fmt: skip
    with open(out / "counting.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["setup"] for r in rows] == list(counting.SETUPS)
    assert [r["watcher"] for r in rows] == ["gradients_accumulate"] * 2 + ["nothing"]
    assert not any(k.startswith("_") for k in rows[0])  # curves and findings stay inside
    report = json.loads((out / "counting.json").read_text())
    assert {r["set-up"] for r in report["table"]} == set(counting.SETUPS)
    assert report["said"][0]["findings"][0]["name"] == "gradients_accumulate"
    assert all(math.isfinite(r["loss"]) for r in report["runs"])
    assert (out / "counting.png").read_bytes()[:4] == b"\x89PNG"
    json_out = tmp_path / "json"
    assert (
        main(["lab", "counting", "--quick", "--repeats", "1", "--out", str(json_out), "--json"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((json_out / "counting.json").read_text())
    assert printed["runs"] == written["runs"] and printed["table"] == written["table"]
    assert printed["runs"] == report["runs"]  # the same seeds, the same figures
    assert main(["lab", "counting", "--repeats", "0", "--out", str(out)]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lab", "no-such-thing"])
