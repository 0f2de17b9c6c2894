"""Training throughput: charlm's trainer (fp32 and bf16 autocast) against a plain
PyTorch LSTM loop, with achieved GFLOP/s as a fraction of the matmul peak measured in
the same run.

    python bench/train_throughput.py [--steps 40] [--repeats 3]
    python bench/train_throughput.py --profile
    python bench/train_throughput.py --dropout [--repeats 7]

`--profile` instead splits the time of one bf16 training step of the `large` preset's
model (2 x 256, window 64, batch 32, dropout 0.2 and 0) by operation, with
torch.profiler: where the time goes, and so what a faster step would have to change.
`--dropout` times that step (fp32, and bf16 autocast where the CPU computes bf16,
natively or emulated by oneDNN) without dropout, with charlm's dropout 0.2 (one mask per
stream and window, the layers run one at a time) and with dropout 0.2 drawn afresh at
every time step as `nn.LSTM`'s own `dropout` and `nn.Dropout` draw it (what charlm did
before), interleaved, medians of `--repeats`.

The plain loop is written here the way a tutorial writes it: Embedding(64) -> 2-layer
nn.LSTM -> Linear, Adam at a constant rate, gradient clipping at 5, random windows from
a zero state, float32. All runs read tiny Shakespeare (from ../shared/corpora, else the
project's notes corpus repeated: speed does not depend on the text) with the same
batch and window. chars/s counts training steps only (no evaluation), after 5 untimed
warm-up steps. Each repeat measures every trainer once, one after another, so noise from
other work on the machine falls on all of them alike; the table gives medians over the
repeats.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F
from common import REPO, report
from torch import nn

from charlm.data import IdSplit
from charlm.model import CharRNN, ModelConfig
from charlm.runtime import bf16_supported
from charlm.training import StepInfo, TrainCallback, TrainConfig, Trainer
from charlm.training.step import train_step
from charlm.vocab import Vocabulary

SHAKESPEARE = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"
# hidden, batch, window; 2 layers, embedding 64. The window-64 rows are the `large`
# preset's shapes (256 units, and 384 for budgets of 10 minutes or more).
SIZES = [(256, 32, 64), (384, 32, 64), (256, 32, 128), (512, 32, 128)]
WARMUP_STEPS = 5


def corpus() -> tuple[str, str]:
    if SHAKESPEARE.is_file():
        return SHAKESPEARE.read_text(encoding="utf-8"), "tiny Shakespeare"
    notes = (REPO / "corpora" / "notes.txt").read_text(encoding="utf-8")
    return (notes * (1_100_000 // len(notes) + 1))[:1_100_000], "notes.txt repeated"


def _gflops(fn: object, flops: float, repeats: int = 5) -> float:
    fn()  # type: ignore[operator]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return flops / statistics.median(times) / 1e9


def matmul_peak(dtype: torch.dtype, n: int = 2048) -> float:
    """The faster of torch.mm (MKL here) and oneDNN's prepacked GEMM on n x n x n.

    On this AMD CPU oneDNN's kernels are about twice as fast as MKL's in float32, so
    torch.mm alone would understate the peak."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = _gflops(lambda: a @ b, 2 * n**3)
    try:
        ops = torch.ops.mkldnn
        packed = ops._reorder_linear_weight(b.t().contiguous(), n)
        bias = torch.zeros(n, dtype=dtype)
        best = max(
            best, _gflops(lambda: ops._linear_pointwise(a, packed, bias, "none", [], ""), 2 * n**3)
        )
    except (AttributeError, RuntimeError):
        pass
    return best


class Plain(nn.Module):
    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, 64)
        self.lstm = nn.LSTM(64, hidden, 2, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.emb(x))
        return self.out(h)  # type: ignore[no-any-return]


def plain_chars_per_s(
    ids: torch.Tensor, vocab: int, hidden: int, b: int, t: int, steps: int
) -> float:
    torch.manual_seed(0)
    model = Plain(vocab, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        starts = torch.randint(0, ids.numel() - t - 1, (b,), generator=gen)
        x = torch.stack([ids[s : s + t] for s in starts])
        y = torch.stack([ids[s + 1 : s + t + 1] for s in starts])
        opt.zero_grad()
        loss = F.cross_entropy(model(x).reshape(-1, vocab), y.reshape(-1))
        loss.backward()  # type: ignore[no-untyped-call]
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    for _ in range(WARMUP_STEPS):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return b * t * steps / (time.perf_counter() - t0)


def charlm_chars_per_s(
    text: str, vocab: Vocabulary, hidden: int, b: int, t: int, steps: int, precision: str
) -> float:
    mcfg = ModelConfig(vocab_size=len(vocab), embedding_dim=64, hidden_size=hidden, num_layers=2)
    tcfg = TrainConfig(
        batch_size=b,
        seq_len=t,
        max_steps=steps + WARMUP_STEPS,
        eval_interval=10**6,
        precision=precision,
        warmup_steps=WARMUP_STEPS,
    )
    times = step_times(mcfg, tcfg, vocab, text)
    return b * t * steps / (times[-1] - times[WARMUP_STEPS - 1])


def step_times(mcfg: ModelConfig, tcfg: TrainConfig, vocab: Vocabulary, text: str) -> list[float]:
    """Train on `text` as `fit` splits it, into a directory thrown away after; when each
    step ended."""
    clock = StepClock()
    split = IdSplit.of_ids(vocab.encode_compact(text).numpy(), 0.1)
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(mcfg, tcfg, vocab, split, Path(tmp), callback=clock).run()
    return clock.times


class StepClock(TrainCallback):
    """When each step ended (the final evaluation and save come after the last one)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step(self, info: StepInfo) -> None:
        self.times.append(time.perf_counter())


def flops_per_char(hidden: int, vocab: int, emb: int = 64, layers: int = 2) -> float:
    """Matmul FLOPs of one training character: forward x 3 (forward + backward)."""
    fwd = 2 * 4 * hidden * (emb + hidden) + (layers - 1) * 2 * 4 * hidden * 2 * hidden
    fwd += 2 * hidden * vocab
    return 3.0 * fwd


def profile_step(dropout: float, steps: int = 20) -> dict[str, float]:
    """Shares of one bf16 training step's self CPU time, by kind of operation."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=65, hidden_size=256, dropout=dropout))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x, y = torch.randint(0, 65, (32, 64)), torch.randint(0, 65, (32, 64))
    for _ in range(WARMUP_STEPS):
        train_step(model, opt, x, y, None, lr=1e-3, clip=1.0, bf16=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            train_step(model, opt, x, y, None, lr=1e-3, clip=1.0, bf16=True)
    kinds = {
        "LSTM backward (oneDNN)": "mkldnn_rnn_layer_backward",
        "LSTM forward (oneDNN)": "mkldnn_rnn_layer",
        "dropout masks (bernoulli_)": "bernoulli_",
    }
    shares = dict.fromkeys([*kinds, "everything else"], 0.0)
    total = 0.0
    for event in prof.key_averages():
        total += event.self_cpu_time_total
        kind = next((k for k, op in kinds.items() if event.key == f"aten::{op}"), None)
        shares[kind or "everything else"] += event.self_cpu_time_total
    ms = total / steps / 1000
    return {"ms per step": ms, **{k: v / total for k, v in shares.items()}}


class PerStepDropout(nn.Module):
    """charlm's model with dropout p drawn afresh at every time step: `nn.LSTM`'s own
    dropout between the layers and `nn.Dropout` before the head."""

    def __init__(self, config: ModelConfig, p: float) -> None:
        super().__init__()
        self.model = CharRNN(config)
        self.model.recurrent.dropout = p
        self.drop = nn.Dropout(p)

    def forward(self, ids: torch.Tensor, state: object = None) -> tuple[torch.Tensor, object]:
        out, new_state = self.model.recurrent(self.model.embedding(ids))
        return self.model.head(self.drop(out)), new_state


def dropout_step_ms(repeats: int, write: bool, steps: int = 20) -> None:
    """The median ms per training step with no dropout, charlm's shared masks and per-step
    masks, reported (and with `write` added to BENCHMARKS.md)."""
    config = ModelConfig(vocab_size=65, hidden_size=256)
    variants: dict[str, nn.Module] = {
        "no dropout": CharRNN(config),
        "charlm's dropout 0.2 (a mask per stream and window)": CharRNN(
            ModelConfig(vocab_size=65, hidden_size=256, dropout=0.2)
        ),
        "dropout 0.2 drawn at every step (before)": PerStepDropout(config, 0.2),
    }
    modes = [False, True] if bf16_supported(torch.device("cpu")) else [False]
    x, y = torch.randint(0, 65, (32, 64)), torch.randint(0, 65, (32, 64))
    optimizers = {
        label: torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
        for label, model in variants.items()
    }
    times: dict[tuple[str, bool], list[float]] = {}
    for r in range(repeats + 1):  # the first round warms up and is not counted
        for bf16 in modes:
            for label, net in variants.items():
                model = net if isinstance(net, CharRNN) else cast(PerStepDropout, net).model
                t0 = time.perf_counter()
                for _ in range(steps):
                    train_step(
                        model, optimizers[label], x, y, None, lr=1e-3, clip=1.0, bf16=bf16, net=net
                    )
                if r:
                    ms = (time.perf_counter() - t0) / steps * 1000
                    times.setdefault((label, bf16), []).append(ms)
    rows = []
    for bf16 in modes:
        base = statistics.median(times[("no dropout", bf16)])
        for label in variants:
            ms = statistics.median(times[(label, bf16)])
            precision = "bf16 autocast" if bf16 else "fp32"
            rows.append(f"| {precision} | {label} | {ms:.1f} | {ms / base:.3f}x |")
    table = (
        "| precision | dropout | ms per step (median) | against no dropout |\n|---|---|---|---|\n"
        + "\n".join(rows)
    )
    notes = (
        f"One training step of a 2 x 256 model (embedding 64, window 64, batch 32, fused "
        f"AdamW, clipping), {steps} steps per measurement, the three variants interleaved, "
        f"median of {repeats} rounds after one untimed; {torch.get_num_threads()} "
        "torch threads."
    )
    report("The cost of dropout in a training step", table, notes, write=write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="see above")
    parser.add_argument("--dropout", action="store_true", help="see above")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.dropout:
        dropout_step_ms(args.repeats, write=not args.no_write)
        return
    if args.profile:
        rows = []
        for dropout in (0.0, 0.2):
            shares = profile_step(dropout)
            parts = " | ".join(f"{100 * v:.1f}%" for k, v in shares.items() if k != "ms per step")
            rows.append(f"| {dropout:g} | {shares['ms per step']:.1f} | {parts} |")
        table = (
            "| dropout | ms per step (profiled) | LSTM backward (oneDNN) | LSTM forward (oneDNN) "
            "| dropout masks (bernoulli_) | everything else |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows)
        )
        notes = (
            "One bf16-autocast training step of a 2 x 256 model (window 64, batch 32, "
            "fused AdamW), 20 steps under torch.profiler after 5 untimed: each kind's share "
            f"of the self CPU time; {torch.get_num_threads()} torch threads. The profiler's "
            "own overhead makes the step slower than in the throughput table."
        )
        report("Where a training step's time goes", table, notes, write=not args.no_write)
        return
    text, name = corpus()
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    trainers = [
        ("plain PyTorch LSTM, fp32", peak32),
        ("charlm, fp32", peak32),
        ("charlm, bf16 autocast", peak16),
    ]
    measured: dict[tuple[int, int, int, str], list[float]] = {}
    for r in range(args.repeats):
        for hidden, b, t in SIZES:
            for label, _ in trainers:
                if label.startswith("plain"):
                    cps = plain_chars_per_s(ids, len(vocab), hidden, b, t, args.steps)
                else:
                    precision = "bf16" if "bf16" in label else "fp32"
                    cps = charlm_chars_per_s(text, vocab, hidden, b, t, args.steps, precision)
                measured.setdefault((hidden, b, t, label), []).append(cps)
                print(f"repeat {r + 1}: 2 x {hidden}, {b} x {t}, {label}: {cps:,.0f} chars/s")
    rows = []
    for hidden, b, t in SIZES:
        fpc = flops_per_char(hidden, len(vocab))
        plain = statistics.median(measured[(hidden, b, t, trainers[0][0])])
        for label, peak in trainers:
            cps = statistics.median(measured[(hidden, b, t, label)])
            gflops = cps * fpc / 1e9
            rows.append(
                f"| 2 x {hidden}, batch {b}, window {t} | {label} | {cps:,.0f} "
                f"| {cps / plain:.2f}x | {gflops:.0f} | {100 * gflops / peak:.0f}% |"
            )
    table = (
        "| model | trainer | chars/s | vs plain | GFLOP/s | of matmul peak |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    notes = (
        f"Corpus: {name}. Matmul peak measured in this run (2048² GEMM, the faster of "
        f"torch.mm and oneDNN): fp32 {peak32:.0f} "
        f"GFLOP/s, bf16 {peak16:.0f} GFLOP/s; fp32 rows are compared with the fp32 peak and "
        f"bf16 rows with the bf16 peak. GFLOP/s counts the LSTM and output matmuls, forward "
        f"and backward (3x forward). Medians of {args.repeats} repeats of {args.steps} timed "
        f"steps, each after {WARMUP_STEPS} untimed ones; {torch.get_num_threads()} torch threads."
    )
    report("Training throughput", table, notes, write=not args.no_write)


if __name__ == "__main__":
    main()
