"""The watcher on loops built here, each with one failure, and the same loops done right:
the failure's rule fires with its cause, the healthy loop gets nothing."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import charlm
from charlm.diagnostics.logs import read_log
from charlm.runlog import TrainRow
from charlm.watcher.rules import bounded_softmax

torch.set_num_threads(1)


OPEN: list[charlm.Watcher] = []


@pytest.fixture(autouse=True)
def _close_watchers() -> object:
    """A failed test leaves no hook behind for the next."""
    yield
    while OPEN:
        OPEN.pop().close()


def names(w: charlm.Watcher) -> list[str]:
    return [f.name for f in w.findings]


class Tagger(nn.Module):
    """An LSTM reading sequences of 6 numbers and telling which of C classes each is."""

    def __init__(self, classes: int = 3, head: bool = True, hidden: int = 16) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden if head else classes, batch_first=True)
        self.head = nn.Linear(hidden, classes) if head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        h = out[:, -1]
        return self.head(h) if self.head is not None else h


def data(n: int = 64, classes: int = 3, signal: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(classes, (n,), generator=g)
    x = torch.randn(n, 6, 1, generator=g) * 0.1
    if signal:
        x[:, 0, 0] += y.float() - (classes - 1) / 2
    return x, y


def train(
    model: nn.Module,
    steps: int,
    *,
    zero_grad: bool = True,
    backward: bool = True,
    lr: float = 0.01,
    optimizer: torch.optim.Optimizer | None = None,
    signal: bool = True,
    n: int = 64,
    **watch: object,
) -> charlm.Watcher:
    torch.manual_seed(0)
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    w = charlm.watch(model, opt, echo=None, **watch)  # type: ignore[arg-type]
    OPEN.append(w)
    x, y = data(n, signal=signal)
    for _ in range(steps):
        if zero_grad:
            opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        if backward:
            loss.backward()
        opt.step()
        w.step(loss)
    return w


def test_a_healthy_loop_gets_nothing() -> None:
    w = train(Tagger(), 300)
    assert w.findings == []
    assert "Findings: none; the run looks healthy." in w.report()
    w.close()


def test_gradients_never_cleared() -> None:
    w = train(Tagger(), 10, zero_grad=False)
    assert names(w) == ["gradients_accumulate"]
    finding = w.findings[0]
    assert finding.step == 4  # checked from the second step on: 3 steps in a row
    assert finding.detector == "gradients_accumulate" and w.passed == []
    assert finding.message.startswith("gradients_accumulate at step 4: ")
    assert "optimizer.zero_grad()" in finding.message
    assert "6 of 6 parameters" in finding.seen and "optimizer.zero_grad()" in finding.advice
    w.close()


def test_gradients_never_cleared_but_clipped_claim_no_growth() -> None:
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    w = charlm.watch(model, opt, echo=None)
    x, y = data()
    for _ in range(10):
        F.cross_entropy(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)  # in place: norms stay at it
        opt.step()
        w.step()
    assert names(w) == ["gradients_accumulate"]
    assert "gradient norm went from" not in w.findings[0].seen
    w.close()


def test_gradients_summed_over_batches_on_purpose_are_not_a_finding() -> None:
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    w = charlm.watch(model, opt, echo=None)
    x, y = data()
    for _ in range(20):
        for half in (slice(0, 32), slice(32, 64)):  # two backward passes, one step
            F.cross_entropy(model(x[half]), y[half]).backward()
        opt.step()
        opt.zero_grad()
        w.step()
    assert w.findings == []
    w.close()


def test_gradients_cleared_later_mark_the_finding_passed() -> None:
    model = Tagger()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    w = charlm.watch(model, opt, echo=None)
    x, y = data()
    for step in range(30):
        if step >= 10:
            opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        w.step()
    assert w.findings == []  # no longer a finding: shown apart
    (finding,) = w.passed
    assert finding.name == "gradients_accumulate"
    assert finding.passed == "from step 11 on, the gradients were cleared between steps"
    assert "Seen and passed (1)" in w.report() and "Findings: none" in w.report()
    w.close()


def test_no_backward_at_all() -> None:
    w = train(Tagger(), 5, backward=False)
    assert names(w) == ["no_gradient"]
    assert w.findings[0].step == 3 and "loss.backward()" in w.findings[0].advice
    assert "stepped 3 times" in w.findings[0].seen
    w.close()


def test_a_detached_encoder_never_learns() -> None:
    class Detached(Tagger):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            assert self.head is not None
            return self.head(out[:, -1].detach())  # the LSTM is cut from the loss

    w = train(Detached(), 25)
    assert names(w) == ["unused_parameters"]
    assert "4 of 6 parameters" in w.findings[0].seen and "lstm.weight_ih_l0" in w.findings[0].seen
    w.close()


def test_parameters_missing_from_the_optimizer() -> None:
    model = Tagger()
    opt = torch.optim.Adam(model.head.parameters(), lr=0.01)  # type: ignore[union-attr]
    w = train(model, 3, optimizer=opt)
    assert names(w) == ["not_optimized"]
    assert "4 of the model's parameters are in no optimizer" in w.findings[0].seen
    w.close()


@pytest.mark.slow
def test_a_softmax_of_the_lstm_output() -> None:
    """The LSTM has as many units as classes and no linear layer: cross-entropy of h."""
    broken = train(Tagger(head=False), 400, lr=0.05)
    assert "bounded_softmax" in names(broken)
    seen = next(f for f in broken.findings if f.name == "bounded_softmax").seen
    assert "test_watcher.py" in seen and "3 classes" in seen
    assert "stuck_at_class_frequencies" not in names(broken)
    fixed = train(Tagger(head=True), 400, lr=0.05)
    assert fixed.findings == []
    broken.close()
    fixed.close()


def test_a_linear_heads_small_logits_are_not_bounded() -> None:
    """A linear layer's logits within [-1, 1] (it has not learned, here it cannot: lr 0)
    are not a bounded output: no finding, though the values press against 1."""
    model = Tagger(head=True)
    with torch.no_grad():
        model.head.weight.zero_()  # type: ignore[union-attr]
        model.head.bias.copy_(torch.tensor([0.95, -0.95, 0.0]))  # type: ignore[union-attr]
    w = train(model, 150, lr=0.0)
    (site,) = w.run.sites.values()
    assert 0.9 < site.largest_ever <= 1.0 and site.projected
    assert "bounded_softmax" not in names(w)
    w.close()


def test_the_bound_on_the_best_probability() -> None:
    """e^b / (e^b + (C - 1) e^-b): 22.8% of 26 classes and 88.1% of 2 at b = 1."""
    from charlm.watcher.record import Run, Site, StepRecord

    for classes in (26, 2):
        best = math.e / (math.e + (classes - 1) / math.e)
        run = Run()
        site = run.sites["x.py:1"] = Site("x.py:1", classes, 1)
        for step in range(1, 121):
            site.steps, site.largest_ever = step, 1.0
            site.recent.append(0.999)
            run.records.append(StepRecord(step, 2.0, {}, {}, 0, 1, 0, 0))
        finding = bounded_softmax(run)
        assert finding is not None and f"at most {best:.1%}" in finding.seen
        assert f"at least {-math.log(best):.3f}" in finding.seen


def test_exploding_gradients() -> None:
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    w = charlm.watch(model, opt, echo=None)
    x, y = torch.randn(32, 4) * 3, torch.randn(32, 1)
    for _ in range(30):
        opt.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        w.step(loss)
    assert names(w) == ["exploding_gradients"]
    assert "clip_grad_norm_" in w.findings[0].advice
    w.close()


def test_labels_unlike_in_the_two_sets() -> None:
    w = charlm.watch(Tagger(), echo=None)
    w.split(torch.tensor([1] * 50 + [0] * 30), torch.tensor([0] * 20))
    assert names(w) == ["split_mismatch"]
    seen = w.findings[0].seen
    assert "all class 0 (20 of 20)" in seen and "class 1 62.5%, class 0 37.5%" in seen
    w.close()
    same = charlm.watch(Tagger(), echo=None)
    same.split([0, 1] * 40, [1, 0] * 10)
    assert same.findings == []
    same.close()


def test_validation_accuracy_below_chance() -> None:
    w = charlm.watch(echo=None)
    w.split([0, 1] * 40, [1, 0] * 10)
    for step in range(1, 11):
        w.step(0.7, **({"val_accuracy": 0.05} if step % 5 == 0 else {}))
    assert names(w) == ["below_chance"]
    assert "0.050 and 0.050" in w.findings[0].seen and "0.500 of guessing" in w.findings[0].seen
    w.close()


@pytest.mark.slow
def test_a_loss_stuck_at_the_class_frequencies() -> None:
    """Inputs that say nothing of the labels: the loss stays at their entropy; reported
    at the end of the run, not while it might still be an early plateau."""
    w = train(Tagger(), 300, signal=False, lr=0.001, n=1024)
    assert names(w) == ["stuck_at_class_frequencies"]
    assert "lstm.l0's forget gate averages" in w.findings[0].causes
    w.close()


def test_the_log_is_what_diagnose_reads(tmp_path: Path) -> None:
    log = tmp_path / "watch.jsonl"
    w = train(Tagger(), 10, zero_grad=False, log=log)
    w.close()
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, 11))
    assert [r["name"] for r in rows if r["kind"] == "finding"] == ["gradients_accumulate"]
    assert [r.step for r in read_log(log) if isinstance(r, TrainRow)] == list(range(1, 11))


def test_findings_print_as_they_fire() -> None:
    out = io.StringIO()
    model = Tagger()
    opt = torch.optim.Adam(model.parameters())
    w = charlm.watch(model, opt, echo=out)
    x, y = data()
    for _ in range(5):
        F.cross_entropy(model(x), y).backward()
        opt.step()
        w.step()
    assert out.getvalue().startswith("charlm: gradients_accumulate at step 4: ")
    assert out.getvalue().count("\n") == 1
    w.close()


def test_closing_removes_every_hook() -> None:
    softmax, method = torch.softmax, torch.Tensor.softmax
    model = Tagger()
    with charlm.watch(model, torch.optim.Adam(model.parameters()), echo=None):
        assert torch.softmax is not softmax
    assert torch.softmax is softmax and torch.Tensor.softmax is method
    assert all(not p._backward_hooks for p in model.parameters())  # type: ignore[attr-defined]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gates_are_recomputed_from_the_weights(cell: str) -> None:
    """The probe's forget (update) gate equals one computed by hand from the module's
    weights, at the first step of a sequence (state zero)."""
    from charlm.watcher.probes import _gates

    torch.manual_seed(0)
    module = nn.LSTM(3, 4, num_layers=2) if cell == "lstm" else nn.GRU(3, 4)
    x = torch.randn(1, 3)
    (first, *_) = list(_gates(module, x))
    H = 4
    z = x[0] @ module.weight_ih_l0.T + module.bias_ih_l0 + module.bias_hh_l0
    gate = z[H : 2 * H]
    if cell == "gru":
        gate = x[0] @ module.weight_ih_l0[H : 2 * H].T + module.bias_ih_l0[H : 2 * H]
        gate = gate + module.bias_hh_l0[H : 2 * H]
    assert first.forget == pytest.approx(float(torch.sigmoid(gate).mean()), abs=1e-6)
    if cell == "lstm":
        bias = module.bias_ih_l0[H : 2 * H] + module.bias_hh_l0[H : 2 * H]
        assert first.forget_bias == pytest.approx(float(bias.mean()), abs=1e-6)


@pytest.mark.slow
def test_a_saturated_first_layer_gets_no_gradient() -> None:
    """Layer 0's gates pinned at their bounds (biases of 30): its gradient vanishes while
    the layer above still learns; every stacked layer's norm is measured from step 1."""
    model = Tagger()
    model.lstm = nn.LSTM(1, 16, num_layers=2, batch_first=True)
    with torch.no_grad():
        model.lstm.bias_ih_l0.fill_(30.0)
    w = train(model, 120, lr=1e-3)
    assert names(w) == ["vanishing_gradients"]
    assert set(w.run.first[0].grad_norms) == {"lstm.l0", "lstm.l1", "head"}
    assert w.run.last is not None and w.run.last.grad_norms["lstm.l1"] > 0
    healthy = train(Tagger(), 120, lr=1e-3)
    assert healthy.findings == []
