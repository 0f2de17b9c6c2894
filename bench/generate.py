"""Greedy generation speed at batch 1: charlm's stepper against stepping nn.LSTM.

    python bench/generate.py [--chars 2000] [--repeats 5]

A 2-layer, 512-unit model over 65 symbols (tiny Shakespeare's vocabulary), randomly
initialised (speed does not depend on training). Each method generates `--chars`
characters greedily after a 100-character prompt; the table gives the median over
`--repeats` runs of microseconds per character. The stepper's paths and the public calls
around it (`Predictor.predict`'s continuation, `Predictor.generate` greedy and sampled,
and non-streamed `/generate` and `/v1/completions` of a real `charlm serve` of the same
weights, on as many threads) are timed interleaved, run by run. The lower bounds are the bytes of
weight one step must read, in each path, divided by the read bandwidth measured here,
once for a buffer of that size (it fits in the last-level cache) and once for one far
larger.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from common import free_port, report, wait_ready

from charlm import checkpoint
from charlm.inference import Predictor, SampleConfig, Stepper
from charlm.model import CharRNN, ModelConfig
from charlm.runtime import bf16_steps_supported, int8_steps_supported
from charlm.train_config import TrainConfig
from charlm.vocab import Vocabulary

V, E, H, L = 65, 64, 512, 2


def read_bandwidth(nbytes: int, repeats: int = 20) -> float:
    """GB/s for summing a float32 buffer of `nbytes` (median of `repeats`)."""
    buf = torch.rand(nbytes // 4)
    buf.sum()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        buf.sum()
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times) / 1e9


def per_char(fn: Callable[[], None], chars: int, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / chars * 1e6


@contextlib.contextmanager
def serving(model: CharRNN, vocab: Vocabulary, root: Path) -> Iterator[str]:
    """`charlm serve` of `model` (named `m`), on as many threads as this process uses:
    its address."""
    ckpts = root / "checkpoints"
    checkpoint.save(
        ckpts / "m",
        model_config=model.config,
        train_config=TrainConfig(),
        vocab=vocab,
        summary={},
        weights=model.state_dict(),
    )
    port = free_port()
    cmd = [sys.executable, "-m", "charlm", "serve", "--checkpoints-dir", str(ckpts)]
    cmd += ["--port", str(port), "--threads", str(torch.get_num_threads())]
    server = subprocess.Popen([*cmd, "--log-level", "warning"])
    try:
        wait_ready(port, server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def post(url: str, body: dict[str, object]) -> Callable[[], None]:
    """A call that POSTs `body` as JSON to `url` and reads the whole answer."""
    data = json.dumps(body).encode()

    def call() -> None:
        request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as answer:
            assert answer.status == 200
            answer.read()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    n = args.chars

    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=V, embedding_dim=E, hidden_size=H, num_layers=L))
    model.eval()
    vocab = Vocabulary([chr(33 + i) for i in range(V)])
    prompt_ids = torch.randint(0, V, (1, 100))
    prompt = vocab.decode(prompt_ids[0])
    predictor = Predictor(model, vocab)

    def naive() -> None:
        with torch.inference_mode():
            logits, state = model(prompt_ids)
            nxt = int(logits[0, -1].argmax())
            for _ in range(n - 1):
                logits, state = model(torch.tensor([[nxt]]), state)
                nxt = int(logits[0, -1].argmax())

    def naive_no_onednn() -> None:
        with torch.backends.mkldnn.flags(enabled=False):
            naive()

    kinds = ["fp32"] + (["bf16"] if bf16_steps_supported() else [])
    kinds += ["int8"] if int8_steps_supported() else []
    steppers = {kind: Stepper(model, weights=kind) for kind in kinds}

    def stepping(kind: str) -> Callable[[], None]:
        def run() -> None:
            with torch.inference_mode():
                logits, state = model(prompt_ids)
                session = steppers[kind].session(state)
                nxt = int(logits[0, -1].argmax())
                for _ in range(n - 1):
                    nxt = int(session.step(nxt).argmax())

        return run

    def charlm_greedy() -> None:
        predictor.predict(prompt, continuation_length=n)

    def sampled_stepper() -> None:
        rng = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            logits, state = model(prompt_ids)
            session = steppers["fp32"].session(state)
            last = logits[0, -1]
            for _ in range(n - 1):
                probs = torch.softmax(last, -1)
                last = session.step(int(torch.multinomial(probs, 1, generator=rng)))

    def generate(temperature: float) -> Callable[[], None]:
        config = SampleConfig(length=n, temperature=temperature, seed=0)

        def run() -> None:
            predictor.generate(prompt, config)

        return run

    batch = 64
    batch_ids = torch.randint(0, V, (batch, 100))

    def batched_sampling() -> None:
        rng = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            logits, state = model(batch_ids)
            for _ in range(n // 10):
                probs = torch.softmax(logits[:, -1], -1)
                nxt = torch.multinomial(probs, 1, generator=rng)
                logits, state = model(nxt, state)

    def batched_sampling_stepper() -> None:
        rng = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            logits, state = model(batch_ids)
            session = Stepper(model).session(state)
            last = logits[:, -1]
            for _ in range(n // 10):
                nxt = torch.multinomial(torch.softmax(last, -1), 1, generator=rng)[:, 0]
                last = session.step_batch(nxt)

    # Accuracy: the stepper's distributions against nn.LSTM's along one greedy path.
    with torch.inference_mode():
        logits, state = model(prompt_ids)
        session = Stepper(model).session(state)
        ref_logits, ref_state = logits[0, -1], state
        worst = 0.0
        for _ in range(500):
            nxt = int(ref_logits.argmax())
            ref_out, ref_state = model(torch.tensor([[nxt]]), ref_state)
            ref_logits = ref_out[0, -1]
            mine = session.step(nxt)
            diff = (torch.softmax(mine, -1) - torch.softmax(ref_logits, -1)).abs().max()
            worst = max(worst, float(diff))
    # bf16 and int8 weights against float32 along the float32 stepper's greedy path.
    accuracy: dict[str, tuple[float, int]] = {}
    for kind in kinds[1:]:
        with torch.inference_mode():
            logits, state = model(prompt_ids)
            a, b = steppers["fp32"].session(state), steppers[kind].session(state)
            nxt = int(logits[0, -1].argmax())
            worst_kind, agree = 0.0, 0
            for _ in range(500):
                pa, pb = torch.softmax(a.step(nxt), -1), torch.softmax(b.step(nxt), -1)
                worst_kind = max(worst_kind, float((pa - pb).abs().max()))
                agree += int(pa.argmax() == pb.argmax())
                nxt = int(pa.argmax())
        accuracy[kind] = worst_kind, agree

    # Bytes of weights read per step: layer 0's recurrent matrix (its input term is a
    # row of a table), both matrices of every later layer, and the output projection
    # (float32 in every path); int8 adds a float scale per row.
    recurrent = (H * 4 * H) + (2 * H * 4 * H) * (L - 1)
    head = H * V * 4
    weight_bytes = {
        "fp32": recurrent * 4 + head,
        "bf16": recurrent * 2 + head,
        "int8": recurrent + 4 * H * L * 4 + head,
    }
    dram_gbs = read_bandwidth(512 * 1024 * 1024)
    labels = {
        "fp32": "charlm Stepper (fused gates, prepacked weights)",
        "bf16": "charlm Stepper, bf16 weights",
        "int8": "charlm Stepper, int8 weights (FBGEMM dynamic quantisation)",
    }
    # The stepper paths are timed interleaved, run by run, so that drift in the
    # machine's speed spreads over all of them and their ratios hold.
    # So are the public calls a user makes, beside the bare stepper they wrap.
    paths: dict[str, Callable[[], None]] = {kind: stepping(kind) for kind in kinds}
    paths |= {
        "sampled": sampled_stepper,
        "generate 0": generate(0.0),
        "generate 1": generate(1.0),
        "predict": charlm_greedy,
    }
    # And the same greedy generation asked over HTTP of a real server, in a process of its
    # own, on as many threads (its compute thread steps while this process waits).
    with tempfile.TemporaryDirectory() as tmp, serving(model, vocab, Path(tmp)) as url:
        paths["/generate"] = post(
            url + "/generate", {"model": "m", "prompt": prompt, "length": n, "temperature": 0}
        )
        paths["/v1"] = post(
            url + "/v1/completions",
            {"model": "m", "prompt": prompt, "max_tokens": n, "temperature": 0},
        )
        runs: dict[str, list[float]] = {name: [] for name in paths}
        for fn in paths.values():
            fn()  # warm-up
        for _ in range(args.repeats):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                fn()
                runs[name].append((time.perf_counter() - t0) / n * 1e6)
    timed = {name: statistics.median(v) for name, v in runs.items()}
    rows = [
        (
            "nn.LSTM stepped one character at a time (oneDNN, torch default)",
            per_char(naive, n, args.repeats),
        ),
        ("nn.LSTM stepped, oneDNN disabled", per_char(naive_no_onednn, n, args.repeats)),
        *((labels[kind], timed[kind]) for kind in kinds),
        (
            "charlm Predictor.predict continuation (stepper + softmax per step)",
            timed["predict"],
        ),
        ("charlm Predictor.generate, temperature 0 (greedy)", timed["generate 0"]),
        ("charlm serve, POST /generate, temperature 0, not streamed", timed["/generate"]),
        ("charlm serve, POST /v1/completions, temperature 0", timed["/v1"]),
        ("charlm Stepper, sampled at temperature 1 (softmax, multinomial)", timed["sampled"]),
        ("charlm Predictor.generate, temperature 1 (sampled)", timed["generate 1"]),
        (
            f"batched sampling, {batch} streams, nn.LSTM step (per character per stream)",
            per_char(batched_sampling, (n // 10) * batch, args.repeats),
        ),
        (
            f"batched sampling, {batch} streams, charlm Stepper.step_batch (per char per stream)",
            per_char(batched_sampling_stepper, (n // 10) * batch, args.repeats),
        ),
    ]
    for kind in kinds:
        nbytes = weight_bytes[kind]
        cached = read_bandwidth(nbytes)
        rows.append(
            (
                f"lower bound for {kind}: {nbytes / 1e6:.1f} MB at {cached:.0f} GB/s "
                f"(cache-sized buffer), {nbytes / (dram_gbs * 1e9) * 1e6:.1f} µs at "
                f"{dram_gbs:.0f} GB/s (512 MB buffer)",
                nbytes / (cached * 1e9) * 1e6,
            )
        )
    base = rows[0][1]
    table = "| method | µs/char | vs nn.LSTM default |\n|---|---|---|\n" + "\n".join(
        f"| {name} | {us:.1f} | {base / us:.1f}x |" for name, us in rows
    )
    notes = (
        f"Model: {L} layers x {H} units, embedding {E}, {V} symbols, float32; greedy, "
        f"{n} characters after a 100-character prompt, median of {args.repeats} runs; "
        f"{torch.get_num_threads()} torch threads. Largest difference between the stepper's "
        f"and nn.LSTM's next-character probabilities over 500 greedy steps: {worst:.2e}."
    )
    for kind, (worst_kind, agree) in accuracy.items():
        notes += (
            f" {kind} weights against the float32 stepper over 500 greedy steps: largest "
            f"probability difference {worst_kind:.2e}, same top character at {agree} of 500 "
            "(a randomly initialised model's distributions are flat; tests/test_stepper.py "
            "bounds the difference on a trained model)."
        )
    notes += (
        " The public calls against the bare float32 stepper measured beside them: "
        f"greedy `Predictor.generate` {timed['generate 0'] / timed['fp32']:.2f}x, "
        f"`Predictor.predict`'s continuation {timed['predict'] / timed['fp32']:.2f}x, "
        f"/generate over HTTP {timed['/generate'] / timed['fp32']:.2f}x, /v1/completions "
        f"{timed['/v1'] / timed['fp32']:.2f}x, "
        f"sampled `Predictor.generate` {timed['generate 1'] / timed['sampled']:.2f}x the "
        "sampled stepper."
    )
    if "int8" in timed:
        notes += f" int8 against the float32 stepper: {timed['fp32'] / timed['int8']:.2f}x."
    report("Greedy generation at batch 1", table, notes, write=not args.no_write)


if __name__ == "__main__":
    main()
