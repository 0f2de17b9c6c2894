"""The recurrent-nets lab: its batched models against PyTorch's modules, its broken
set-ups failing the way they should, its fixes working, and `charlm lab` end to end."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from charlm.cli import main
from charlm.lab import alphabet_head, counting, latching
from charlm.lab.batched import BatchedCells, clip_per_model, key_gradient
from charlm.lab.broken import double_softmax_floor, output_cap, softmax_head_floor

MODULES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@pytest.mark.parametrize("cell", list(MODULES))
def test_batched_cells_are_independent_pytorch_modules(cell: str) -> None:
    torch.manual_seed(0)
    batched = BatchedCells(cell, 3, 6, 5).double()
    modules = [MODULES[cell](6, 5, batch_first=True).double() for _ in range(3)]
    for i, m in enumerate(modules):
        batched.load_module(i, m)
    ids = torch.randint(0, 6, (3, 4, 7))
    targets = torch.randint(0, 6, (3, 4))
    logits = batched(ids)
    F.cross_entropy(logits[1], targets[1]).backward()  # model 1's loss only
    for i, m in enumerate(modules):
        out, _ = m(F.one_hot(ids[i], 6).double())
        ref = out[:, -1] @ batched.head_w[i] + batched.head_b[i, 0]
        torch.testing.assert_close(logits[i], ref, atol=1e-12, rtol=0)
    ref_logits = modules[1](F.one_hot(ids[1], 6).double())[0][:, -1]
    ref_logits = ref_logits @ batched.head_w[1].detach() + batched.head_b[1, 0].detach()
    F.cross_entropy(ref_logits, targets[1]).backward()
    assert batched.w_hh.grad is not None and modules[1].weight_hh_l0.grad is not None
    torch.testing.assert_close(batched.w_hh.grad[1], modules[1].weight_hh_l0.grad.T)
    assert float(batched.w_hh.grad[0].abs().max()) == 0.0 == float(batched.w_hh.grad[2].abs().max())


def test_clipping_is_per_model() -> None:
    batched = BatchedCells("rnn", 2, 4, 3)
    for p in batched.parameters():
        p.grad = torch.zeros_like(p)
        p.grad[0] = 10.0  # model 0: a large gradient
        p.grad[1] = 1e-3  # model 1: a small one
    norms = clip_per_model(batched, 1.0)
    after = torch.stack([p.grad.pow(2).flatten(1).sum(1) for p in batched.parameters()])
    after = after.sum(0).sqrt()
    assert norms[0] > 1 and abs(float(after[0]) - 1.0) < 1e-4
    assert abs(float(after[1]) - float(norms[1])) < 1e-9  # left alone


def test_the_softmax_heads_bounds() -> None:
    torch.manual_seed(0)
    for k in (2, 26, 56):
        one_hot = torch.zeros(1, k)
        one_hot[0, 0] = 1.0  # unbounded outputs: a softmax can reach one-hot, no further
        assert (
            abs(float(F.cross_entropy(one_hot, torch.tensor([0]))) - double_softmax_floor(k)) < 1e-6
        )
        best = torch.full((k,), -1.0)
        best[0] = 1.0
        assert abs(float(torch.softmax(best, 0)[0]) - output_cap(k)) < 1e-6
        # No output of an LSTM (each value in [-1, 1]) gets below the floor.
        outputs = torch.rand(20_000, k) * 2 - 1
        losses = F.cross_entropy(
            torch.softmax(outputs, -1), torch.zeros(20_000, dtype=torch.long), reduction="none"
        )
        assert float(losses.min()) >= softmax_head_floor(k) - 1e-6
        top = torch.softmax(best, 0).unsqueeze(0)
        assert abs(float(F.cross_entropy(top, torch.tensor([0]))) - softmax_head_floor(k)) < 1e-6
    assert 2.32 < double_softmax_floor(26) < 2.33 and 3.06 < softmax_head_floor(26) < 3.07


def test_alphabet_head_broken_plateaus_and_the_fix_is_certain() -> None:
    broken = alphabet_head.one_run(26, 26, "softmax on LSTM output, Adam, clipping", 0, 400)
    fixed = alphabet_head.one_run(26, 26, "linear projection, Adam, clipping (charlm)", 0, 400)
    assert broken["loss"] > 2.0 and broken["loss"] >= softmax_head_floor(26)
    assert broken["p_right"] <= output_cap(26)
    assert "plateau_on_determined_text" in broken["findings"]
    assert fixed["p_right"] > 0.999 and fixed["top1"] == 1.0 and fixed["findings"] == ""


def test_counting_without_zero_grad_fails_and_with_it_counts() -> None:
    broken = counting.one_run("gradients never zeroed, clipping at 1", 0, 400)
    fixed = counting.one_run("zero_grad every step, clipping at 1 (charlm)", 0, 400)
    assert fixed["accuracy"] == 1.0 and fixed["min_answer_prob"] > 0.9
    assert fixed["continuation"].startswith("0.00,0.05,0.10,0.15,0.20,0.25,0.30,0.35,0.40")
    assert broken["accuracy"] < 0.9 and broken["loss"] > 3 * fixed["loss"]
    assert "exploding_gradients" in broken["findings"]  # which names the missing zero_grad


def test_latching_splits() -> None:
    rng = torch.Generator().manual_seed(0)
    _, y, _, yv = latching.split_data("tail", 2, 7, rng)
    assert (yv == latching.B).all()  # the classic mistake: validation holds one class
    assert float((y == latching.A).float().mean()) == 0.625
    x, y, _, yv = latching.split_data("shuffled", 2, 7, rng)
    assert (yv == latching.A).sum(1).tolist() == [50, 50]
    assert (y == latching.A).sum(1).tolist() == [200, 200]
    assert x.shape == (2, 400, 9) and (x[..., 0] == y).all()
    assert (x[..., -1] == latching.EQUALS).all()
    assert not (y[:, :200] == latching.A).all()  # shuffled, not A first


def test_an_lstm_latches_a_gap_of_20() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the lab runs it
    try:
        rows = latching.latch_point("lstm", 20, 3, 1500)
    finally:
        torch.set_num_threads(before)
    shuffled = [r for r in rows if r["split"] == "shuffled"]
    assert max(r["test_acc"] for r in shuffled) == 1.0, shuffled
    assert all(0 <= r["key_grad_start"] < 1 for r in rows)  # the gap dampens the gradient


def test_key_gradient_vanishes_for_a_simple_rnn_over_a_long_gap() -> None:
    torch.manual_seed(0)
    ids = latching.lines(torch.zeros(4, 16, dtype=torch.long), 50, torch.Generator())
    ratio = key_gradient(BatchedCells("rnn", 4, 7, 16), ids, torch.zeros(4, 16, dtype=torch.long))
    assert float(ratio.max()) < 1e-6


def test_lab_command_writes_its_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lab"
    assert main(["lab", "counting", "--quick", "--repeats", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| set-up |" in text and "charlm lab counting --quick --repeats 1" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "counting.csv", "counting.json", "counting.md", "counting.png",
    ]  # fmt: skip
    with open(out / "counting.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["setup"] for r in rows] == list(counting.SETUPS)
    assert all(r["continuation"].startswith("0.00,") for r in rows)
    assert not any(k.startswith("_") for k in rows[0])  # curves and quotes stay inside
    report = json.loads((out / "counting.json").read_text())
    assert {r["set-up"] for r in report["table"]} == set(counting.SETUPS)
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
    assert main(["lab", "counting", "--repeats", "0", "--out", str(out)]) == 2
    assert "--repeats must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lab", "no-such-thing"])
