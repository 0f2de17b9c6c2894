"""Throughput and latency of the HTTP service under concurrent load, on loopback.

    python bench/serve.py [--seconds 5] [--rounds 3] [--concurrency 32] [--text-chars N]
                          [--before REV] [--threads 1 2]
    python bench/serve.py --head-of-line [--before REV]
    python bench/serve.py --largest [--before REV]

Trains a 2-layer 256-unit model on corpora/notes.txt into a temporary directory (speed
does not depend on how well a model is trained, only on its size). First the library's
own batched speed: `Predictor.predict_batch` of 32 texts on one thread, no HTTP. Then a
real `charlm serve` (uvloop and httptools) and, beside it, an empty FastAPI endpoint on
the same loop and parser (bench/ceiling.py): the most requests per second this machine's
HTTP stack can answer; then the same app and endpoint under uvicorn's plain stack
(asyncio and h11); with `--before REV`, also `charlm serve` of that revision (checked
out into a temporary worktree) on the same stack; with `--threads 1 2`, `charlm serve`
and the library once with each thread count (the model thread's OpenMP team: one core,
or the second one too, shared with the event loop). Texts of 2 characters (the HTTP stack
is the limit) and of 70 (the model's arithmetic is). For each concurrency C, C
keep-alive connections each send a request, wait for the whole answer and send the next, for
a fixed time after a warm-up; the server and the empty endpoint are measured alternately
with the same client. The client is wrk (`--client wrk`, the default where it is
installed: one thread of C, which leaves the server most of the machine), or a few lines
of asyncio in this process (`--client python`), which competes with the server for the
same cores, as it does for the ceiling. Peak RSS of the server process is read from
/proc at the end.

`--head-of-line` measures instead what a long generation does to other requests: the
latency of sequential /predict calls on an idle server, then while one client's
non-streaming 10,000-character /generate runs; and the time of 1 and of 4 concurrent
2,000-character generations. With `--before REV`, the same is measured on a server
running that revision's code (checked out into a temporary worktree), in the same run.

`--largest` measures what the largest request of each kind that the default caps allow
does to others: sequential /predict calls while it runs (against their idle latency),
its own time, and the server's resident memory before, at its highest while it ran and
1 s after; then, for the largest /v1/completions, a client that gives up after 1 s: the
/predict calls of the next 2 s. With `--before REV`, the same requests against that
revision's server, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from common import REPO, charlm_of, code_trees, free_port, percentile, report, wait_ready

from charlm.cli import main as charlm
from charlm_service.protocol import PROTOCOL
from charlm_service.supervisor import APP


def request_bytes(path: str, body: object) -> bytes:
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


PREDICT = request_bytes("/predict", {"model": "m", "text": "the rain came", "top_k": 5})
"""The /predict call timed beside long requests."""


async def one_connection(
    port: int, requests: list[bytes], until: float, latencies: list[float], warm_until: float
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors, i = 0, 0
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= until:
                return errors
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
            if t0 >= warm_until:
                latencies.append(time.perf_counter() - t0)
    finally:
        writer.close()


async def load(
    port: int, requests: list[bytes], concurrency: int, seconds: float
) -> dict[str, float]:
    warm = 1.0
    start = time.perf_counter()
    latencies: list[float] = []
    errors = await asyncio.gather(
        *(
            one_connection(port, requests, start + warm + seconds, latencies, start + warm)
            for _ in range(concurrency)
        )
    )
    ms = [s * 1000 for s in latencies]
    return {
        "rps": len(latencies) / seconds,
        "p50": statistics.median(ms),
        "p99": percentile(ms, 99),
        "errors": float(sum(errors)),
    }


WRK_SCRIPT = """
local bodies = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json"},
                    bodies[(i %% #bodies) + 1])
end
"""


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    value, unit = found.groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk_load(
    port: int, path: str, bodies: list[object], concurrency: int, seconds: float, tmp: Path
) -> dict[str, float]:
    """wrk (one thread) against `path`, the bodies in turn; after a 1-second warm-up run."""
    script = tmp / "wrk.lua"
    quoted = ", ".join(json.dumps(json.dumps(b)) for b in bodies)
    script.write_text(WRK_SCRIPT % (quoted, path))
    url = f"http://127.0.0.1:{port}{path}"
    base = ["wrk", "-t1", f"-c{concurrency}", "-s", str(script), "--latency"]
    subprocess.run([*base, "-d1s", url], capture_output=True, check=True)
    out = subprocess.run(
        [*base, f"-d{seconds:g}s", url], capture_output=True, text=True, check=True
    ).stdout
    if "99%" not in out:
        raise SystemExit(f"wrk against {url} measured nothing:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    n_errors = int(bad.group(1)) if bad else 0
    n_errors += sum(map(int, errors.groups())) if errors else 0
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(n_errors)}


def train_model(root: Path) -> Path:
    """A 2 x 256 model named `m`, trained 20 steps on notes.txt (speed does not depend on
    how well a model is trained); the checkpoints directory under `root`."""
    ckpts = root / "checkpoints"
    train = ["train", str(REPO / "corpora" / "notes.txt"), "--checkpoints-dir", str(ckpts)]
    train += ["--name", "m", "--hidden-size", "256", "--num-layers", "2", "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert charlm([*train, "--max-steps", "20"]) == 0
    return ckpts


def status_mib(pid: int, field: str) -> float:
    """A memory figure of /proc/PID/status (`VmRSS`, `VmHWM`: the peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def served(code: Path, ckpts: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`charlm serve` of the tree `code` on `ckpts`, ready: (its port, its process);
    stopped on leaving."""
    port = free_port()
    cmd = [*charlm_of(code), "serve", "--checkpoints-dir", str(ckpts)]
    server = subprocess.Popen([*cmd, "--port", str(port), "--log-level", "warning"], cwd=code)
    try:
        wait_ready(port, server)
        yield port, server
    finally:
        server.terminate()
        server.wait()


def peak_rss_mib(pid: int) -> float:
    return status_mib(pid, "VmHWM")


def health(port: int) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    result: dict[str, object] = json.loads(data.split(b"\r\n\r\n", 1)[1])
    return result


async def read_body(reader: asyncio.StreamReader, head: bytes) -> bytes:
    """The body after the headers `head`: Content-Length bytes, or chunked."""
    lines = [line.lower() for line in head.split(b"\r\n")]
    if b"transfer-encoding: chunked" in lines:
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readexactly(2)
        return b"".join(parts)
    length = next((int(line[15:]) for line in lines if line.startswith(b"content-length:")), 0)
    return await reader.readexactly(length)


async def timed_call(port: int, request: bytes) -> tuple[float, bytes]:
    """Seconds from sending `request` on a new connection to its whole answer; the body."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        body = await read_body(reader, head)
        assert head.startswith(b"HTTP/1.1 200"), head
    finally:
        writer.close()
    return time.perf_counter() - t0, body


async def head_of_line(port: int) -> dict[str, float]:
    """/predict latency idle and during a long /generate; 1 against 4 generations."""
    predict = request_bytes("/predict", {"model": "m", "text": "the rain came", "top_k": 5})
    for _ in range(5):
        await timed_call(port, predict)  # warm-up
    idle = [(await timed_call(port, predict))[0] for _ in range(50)]
    long = asyncio.create_task(
        timed_call(
            port, request_bytes("/generate", {"model": "m", "prompt": "a", "length": 10_000})
        )
    )
    await asyncio.sleep(0.2)  # the generation is under way
    during = []
    while not long.done():
        during.append((await timed_call(port, predict))[0])
    long_s, _ = await long
    gen = request_bytes("/generate", {"model": "m", "prompt": "the ", "length": 2000, "seed": 1})
    one = min([(await timed_call(port, gen))[0] for _ in range(3)])
    t0 = time.perf_counter()
    await asyncio.gather(*(timed_call(port, gen) for _ in range(4)))
    four = time.perf_counter() - t0
    ms = [x * 1000 for x in idle], [x * 1000 for x in during]
    return {
        "idle_p50": statistics.median(ms[0]),
        "idle_p99": percentile(ms[0], 99),
        "during_p50": statistics.median(ms[1]) if during else float("nan"),
        "during_max": max(ms[1]) if during else float("nan"),
        "during_n": float(len(during)),
        "long_s": long_s,
        "one_s": one,
        "four_s": four,
    }


def largest_requests() -> dict[str, tuple[str, dict[str, object]]]:
    """The largest request of each kind within the default caps (service/settings.py:
    20,000-character texts, 10 alternatives, 100,000 characters scored, 200,000
    activation values), by label: (path, body)."""
    notes = (REPO / "corpora" / "notes.txt").read_text()
    long = (notes * (20_000 // len(notes) + 1))[:20_000]
    prompts = [long[i:] + long[:i] for i in range(0, 5000, 1000)]  # five different texts
    items = [{"prompt": long[i : i + 950], "answer": long[i + 950 : i + 990]} for i in range(100)]
    echo = {"model": "m", "max_tokens": 0, "echo": True, "logprobs": 10}
    return {
        "/score, 20,000 characters, 10 alternatives": (
            "/score",
            {"model": "m", "text": long, "alternatives": 10},
        ),
        "/report, 20,000 characters": ("/report", {"model": "m", "text": long}),
        "/activations, 20,000 characters x 10 units": (
            "/activations",
            {"model": "m", "text": long, "cells": list(range(10))},
        ),
        "/accuracy, 100 items of 950 + 40 characters": (
            "/accuracy",
            {"model": "m", "items": items},
        ),
        "/v1/completions echo, 5 prompts of 20,000, logprobs 10": (
            "/v1/completions",
            {**echo, "prompt": prompts},
        ),
        "/v1/completions echo, 1 prompt of 20,000, n 5, logprobs 10": (
            "/v1/completions",
            {**echo, "prompt": long, "n": 5},
        ),
        "/predict, 20,000 characters, continuation 2,000": (
            "/predict",
            {"model": "m", "text": long, "top_k": 5, "continuation_length": 2000},
        ),
        "/generate, 20,000-character prompt, 10,000 characters": (
            "/generate",
            {"model": "m", "prompt": long, "length": 10_000},
        ),
    }


def rss_mib(pid: int) -> float:
    return status_mib(pid, "VmRSS")


async def behind(port: int, pid: int, path: str, body: dict[str, object]) -> dict[str, float]:
    """/predict latencies (ms) while the request runs; its seconds; RSS (MiB) before, at
    its highest while it ran, and 1 s after."""
    before = rss_mib(pid)
    peak = before
    big = asyncio.create_task(timed_call(port, request_bytes(path, body)))
    await asyncio.sleep(0.2)  # under way
    during = []
    while not big.done():
        during.append((await timed_call(port, PREDICT))[0] * 1000)
        peak = max(peak, rss_mib(pid))
    seconds, _ = await big
    await asyncio.sleep(1.0)
    return {
        "p50": statistics.median(during) if during else float("nan"),
        "max": max(during, default=float("nan")),
        "n": float(len(during)),
        "seconds": seconds,
        "rss_before": before,
        "rss_peak": peak,
        "rss_after": rss_mib(pid),
    }


async def given_up(port: int, path: str, body: dict[str, object]) -> dict[str, float]:
    """The request sent and its connection closed after 1 s; then /predict latencies
    (ms) over the next 2 s."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes(path, body))
    await asyncio.sleep(1.0)
    writer.close()
    after = []
    until = time.perf_counter() + 2.0
    while time.perf_counter() < until:
        after.append((await timed_call(port, PREDICT))[0] * 1000)
    return {"p50": statistics.median(after), "max": max(after), "n": float(len(after))}


async def idle_ms(port: int) -> float:
    """Median /predict latency (ms) of 50 calls on the idle server, after 5 to warm up."""
    for _ in range(5):
        await timed_call(port, PREDICT)
    return statistics.median([(await timed_call(port, PREDICT))[0] * 1000 for _ in range(50)])


def run_largest(args: argparse.Namespace) -> None:
    requests = largest_requests()
    gone_kind = "/v1/completions echo, 5 prompts of 20,000, logprobs 10"
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = train_model(Path(tmp))
        rows, gone_rows = [], []
        with code_trees(args.before, Path(tmp)) as codes:
            for label, code in codes.items():
                with served(code, ckpts) as (port, server):
                    idle = asyncio.run(idle_ms(port))
                    for kind, (path, body) in requests.items():
                        r = asyncio.run(behind(port, server.pid, path, body))
                        rows.append(
                            f"| {label} | {kind} | {idle:.2f} | {r['p50']:.2f} "
                            f"({r['p50'] / idle:.1f}x) | {r['max']:.1f} | {int(r['n'])} "
                            f"| {r['seconds']:.2f} | {r['rss_before']:,.0f} → "
                            f"{r['rss_peak']:,.0f} → {r['rss_after']:,.0f} |"
                        )
                        print(rows[-1], flush=True)
                    g = asyncio.run(given_up(port, *requests[gone_kind]))
                    gone_rows.append(
                        f"| {label} | {gone_kind} | {idle:.2f} | {g['p50']:.2f} "
                        f"({g['p50'] / idle:.1f}x) | {g['max']:.1f} | {int(g['n'])} |"
                    )
                    print(gone_rows[-1], flush=True)
    table = (
        "| server | request | /predict idle p50 ms | p50 ms while it runs | max ms "
        "| /predict calls answered meanwhile | the request, s | server RSS MiB: before → "
        "highest → 1 s after |\n|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nA client that gives up after 1 s:\n\n| server | request | /predict idle p50 "
        "ms | p50 ms in the 2 s after | max ms | calls |\n|---|---|---|---|---|---|\n"
        + "\n".join(gone_rows)
    )
    notes = (
        "Model: 2 x 256 LSTM (embedding 64) on notes.txt, one server process. /predict: "
        "'the rain came', top_k 5, one call at a time on a new connection each, 50 on the "
        "idle server, then as many as fit while the request (on its own connection) runs. "
        "Texts are notes.txt repeated to 20,000 characters."
    )
    report(
        "The largest request of each kind, and a /predict behind it",
        table,
        notes,
        write=not args.no_write,
    )


def run_head_of_line(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ckpts = train_model(Path(tmp))
        rows = []
        with code_trees(args.before, Path(tmp)) as codes:
            for label, code in codes.items():
                with served(code, ckpts) as (port, _):
                    r = asyncio.run(head_of_line(port))
                rows.append(
                    f"| {label} | {r['idle_p50']:.2f} | {r['during_p50']:.2f} "
                    f"({r['during_p50'] / r['idle_p50']:.1f}x) | {r['during_max']:.1f} "
                    f"| {int(r['during_n'])} | {r['long_s']:.2f} | {r['one_s']:.2f} "
                    f"| {r['four_s']:.2f} ({4 * r['one_s'] / r['four_s']:.2f}x) |"
                )
                print(rows[-1], flush=True)
    table = (
        "| server | /predict idle p50 ms | p50 ms during a 10,000-char /generate | max ms "
        "| calls answered during it | the /generate, s | one 2,000-char /generate, s "
        "| four at once, s (characters/s against one) |\n|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
    )
    notes = (
        "Model: 2 x 256 LSTM (embedding 64) on notes.txt. /predict: 'the rain came', top_k "
        "5, one call at a time on a new connection each, 50 on the idle server, then as "
        "many as fit while another connection's non-streaming /generate of 10,000 "
        "characters (prompt 'a', temperature 1) runs. Then one 2,000-character seeded "
        "/generate (best of 3), and four of them sent at once; '(Nx)' is how many more "
        "characters per second four made together than one alone."
    )
    report(
        "Head-of-line blocking: /predict during a long /generate",
        table,
        notes,
        write=not args.no_write,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--rounds", type=int, default=3, help="median of this many cells")
    parser.add_argument("--continuation", type=int, default=0, help="continuation_length")
    parser.add_argument(
        "--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python"
    )
    parser.add_argument(
        "--text-chars",
        type=int,
        default=0,
        help="texts of this length cut from notes.txt (0: 2 and 70 characters)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--head-of-line", action="store_true", help="see above")
    parser.add_argument("--largest", action="store_true", help="see above")
    parser.add_argument("--before", help="a revision to compare with, in the same run")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1],
        help="compute threads of `charlm serve` and the library, each measured (throughput)",
    )
    args = parser.parse_args()
    if args.head_of_line:
        run_head_of_line(args)
        return
    if args.largest:
        run_largest(args)
        return

    run_throughput(args)


STACKS = {"asyncio + h11": ["--loop", "asyncio", "--http", "h11"]}
"""The servers measured beside `charlm serve` as it runs (uvloop and httptools,
service/protocol.py): the same app under uvicorn's stack without its extras."""


@contextlib.contextmanager
def stack(
    flags: list[str] | None,
    code: Path,
    threads: int,
    ckpts: Path,
    port: int,
    empty_port: int,
) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    """The charlm server on the stack `flags` (None: `charlm serve` of the source tree
    `code`) computing on `threads` threads, and the empty endpoint on the same stack."""
    quiet = ["--log-level", "warning"]
    if flags is None:
        cmd = [*charlm_of(code), "serve", "--checkpoints-dir", str(ckpts)]
        cmd += ["--port", str(port), "--max-pending", "1024", "--threads", str(threads), *quiet]
        server = subprocess.Popen(cmd, cwd=code)
        flags = ["--loop", "uvloop", "--http", PROTOCOL]
    else:
        env = {**os.environ, "CHARLM_CHECKPOINTS_DIR": str(ckpts), "CHARLM_MAX_PENDING": "1024"}
        env["CHARLM_THREADS"] = str(threads)
        cmd = [sys.executable, "-m", "uvicorn", "--factory", APP, "--port", str(port), *flags]
        server = subprocess.Popen([*cmd, *quiet], env=env)
    env = {**os.environ, "PYTHONPATH": str(REPO / "bench")}
    empty = ["-m", "uvicorn", "ceiling:app", "--port", str(empty_port), *flags, *quiet]
    ceiling = subprocess.Popen([sys.executable, *empty], env=env)
    try:
        wait_ready(port, server)
        wait_ready(empty_port, ceiling)
        yield server, ceiling
    finally:
        server.terminate()
        ceiling.terminate()
        server.wait()
        ceiling.wait()


def library_ceiling(ckpts: Path, texts: list[str], seconds: float, threads: int = 1) -> float:
    """Texts a second that `Predictor.predict_batch` answers in batches of 32 on `threads`
    threads in this process, with no HTTP: the model's own batched speed."""
    from charlm.inference import Predictor

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        predictor = Predictor.from_checkpoint(ckpts / "m")
        batches = [
            [predictor.query(texts[(i + j) % len(texts)], 5) for j in range(32)]
            for i in range(len(texts))
        ]
        predictor.predict_batch(batches[0])  # warm-up
        done, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            predictor.predict_batch(batches[done % len(batches)])
            done += 1
        return done * 32 / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)


def measure(
    args: argparse.Namespace,
    port: int,
    path: str,
    bodies: list[object],
    connections: int,
    tmp: Path,
) -> dict[str, float]:
    if args.client == "wrk":
        return wrk_load(port, path, bodies, connections, args.seconds, tmp)
    requests = [request_bytes(path, b) for b in bodies]
    return asyncio.run(load(port, requests, connections, args.seconds))


def median_cell(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over `runs`, and their errors summed."""
    out = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50", "p99")}
    return {**out, "errors": sum(r["errors"] for r in runs)}


TEXT_LENGTHS = {"2 characters": 2, "70 characters": 70}
"""The texts measured: short ones (the HTTP stack is the limit) and long ones (the
model's arithmetic is), each cut from notes.txt at 200 places."""


def run_throughput(args: argparse.Namespace) -> None:
    notes = (REPO / "corpora" / "notes.txt").read_text()
    lengths = TEXT_LENGTHS
    if args.text_chars:
        lengths = {f"{args.text_chars} characters": args.text_chars}
    texts = {
        label: [notes[i : i + n] for i in range(0, 200 * 31, 31)] for label, n in lengths.items()
    }
    bodies: dict[str, list[object]] = {
        label: [
            {"model": "m", "text": t, "top_k": 5, "continuation_length": args.continuation}
            for t in some
        ]
        for label, some in texts.items()
    }
    runs: dict[tuple[str, str, int, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as running:
        codes = running.enter_context(code_trees(args.before, Path(tmp), now="charlm serve"))
        stacks: dict[str, tuple[list[str] | None, Path, int]] = {
            **{name: (None, code, args.threads[0]) for name, code in codes.items()},
            **{f"charlm serve, {n} threads": (None, REPO, n) for n in args.threads[1:]},
            **{name: (flags, REPO, args.threads[0]) for name, flags in STACKS.items()},
        }
        names = list(stacks)  # `charlm serve` of the revision before, if any, first
        cells = [(name, label, c) for label in texts for c in args.concurrency for name in names]
        ckpts = train_model(Path(tmp))
        ceilings = {
            (label, n): library_ceiling(ckpts, t, args.seconds, n)
            for n in args.threads
            for label, t in texts.items()
        }
        ports = {name: (free_port(), free_port()) for name in names}
        servers = {
            name: running.enter_context(stack(*stacks[name], ckpts, *ports[name])) for name in names
        }
        for _ in range(args.rounds):  # every server up at once, measured in turn
            for name, label, c in cells:
                port, empty_port = ports[name]
                for path, at in (("/empty", empty_port), ("/predict", port)):
                    r = measure(args, at, path, bodies[label], c, Path(tmp))
                    runs.setdefault((name, label, c, path), []).append(r)
        stats = health(ports["charlm serve"][0])["predict_batches"]
        rss = peak_rss_mib(servers["charlm serve"][0].pid)
    rows = []
    for name, label, c in cells:
        e = median_cell(runs[name, label, c, "/empty"])
        p = median_cell(runs[name, label, c, "/predict"])
        rows.append(
            f"| {name} | {label} | {c} | {e['rps']:,.0f} | {e['p50']:.2f} "
            f"| {e['p99']:.2f} | {p['rps']:,.0f} | {p['p50']:.2f} "
            f"| {p['p99']:.2f} ({p['p99'] / p['p50']:.1f}x) "
            f"| {p['rps'] / e['rps']:.2f} | {p['rps'] / ceilings[label, stacks[name][2]]:.2f} "
            f"| {int(p['errors'] + e['errors'])} |"
        )
    table = (
        "| server | text | connections | empty endpoint req/s | p50 ms | p99 ms "
        "| /predict req/s | p50 ms | p99 ms (of p50) | /predict / empty "
        "| /predict / library | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
    )
    assert isinstance(stats, dict)
    ceiling_text = ", ".join(
        f"{label} on {n} thread(s): {v:,.0f} texts/s" for (label, n), v in ceilings.items()
    )
    first = args.threads[0]
    notes_text = (
        f"Client: {args.client}. /predict: 2 x 256 LSTM (embedding 64, vocabulary of "
        f"notes.txt), texts cut from notes.txt at 200 places, sent in turn, top_k 5, "
        f"continuation_length {args.continuation}. The empty endpoint (bench/ceiling.py) "
        "runs on the same loop and HTTP parser as the server beside it. The servers compute "
        f"on {first} thread(s) (`--threads {first}`) unless their name says otherwise; each "
        "is compared with the library on as many threads. Library: "
        f"`Predictor.predict_batch` of 32 texts, no HTTP ({ceiling_text}). "
        f"All {2 * len(names)} servers run at once; each cell is the median of "
        f"{args.rounds} rounds over every server in turn, each run {args.seconds:g} s "
        "measured after 1 s of warm-up. "
        f"Batching in `charlm serve`: {stats['requests']:,} calls in {stats['batches']:,} batches "
        f"(largest {stats['largest']}). Peak RSS of the `charlm serve` process: {rss:,.0f} MiB."
    )
    report(
        "HTTP throughput under concurrent load, loopback",
        table,
        notes_text,
        write=not args.no_write,
    )


if __name__ == "__main__":
    main()
