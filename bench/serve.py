"""Latency of the HTTP service on loopback: sequential /predict calls against a real
`charlm serve` process, for the alphabet model and a 2-layer 256-unit model.

    python bench/serve.py [--calls 200]

Trains both models first into a temporary directory (latency does not depend on how
well a model is trained, only on its size), starts the server on a free port, warms
it up, then times each call from request to parsed response. GET /health, which runs
no model, is timed alongside as the floor set by HTTP, FastAPI and JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
from common import REPO, append_section, summary_ms

from charlm.cli import main as charlm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_calls(
    client: httpx.Client, calls: int, method: str, path: str, body: object
) -> list[float]:
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        r = client.request(method, path, json=body)
        r.json()
        out.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ckpts = Path(tmp) / "checkpoints"
        corpora = REPO / "corpora"
        lstm256 = ["--name", "lstm256x2", "--hidden-size", "256", "--num-layers", "2"]
        with contextlib.redirect_stdout(io.StringIO()):  # the training reports
            for corpus, extra in (
                ("alphabet.txt", []),
                ("notes.txt", [*lstm256, "--max-steps", "20"]),
            ):
                rc = charlm(
                    ["train", str(corpora / corpus), "--out-dir", str(ckpts), "--quiet", *extra]
                )
                assert rc == 0
        port = free_port()
        cmd = [sys.executable, "-m", "charlm", "serve", "--checkpoints", str(ckpts)]
        server = subprocess.Popen([*cmd, "--port", str(port), "--log-level", "warning"])
        try:
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(300):
                    try:
                        client.get("/health")
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
                cases = [
                    ("GET /health (no model)", "GET", "/health", None),
                    (
                        "alphabet: /predict 'abcdefghij'",
                        "POST",
                        "/predict",
                        {"model": "alphabet", "text": "abcdefghij"},
                    ),
                    (
                        "alphabet: /predict + 20-char continuation",
                        "POST",
                        "/predict",
                        {"model": "alphabet", "text": "abcdefghij", "continuation_length": 20},
                    ),
                    (
                        "2x256: /predict 'the rain came'",
                        "POST",
                        "/predict",
                        {"model": "lstm256x2", "text": "the rain came"},
                    ),
                    (
                        "2x256: /predict + 20-char continuation",
                        "POST",
                        "/predict",
                        {"model": "lstm256x2", "text": "the rain came", "continuation_length": 20},
                    ),
                ]
                rows = []
                for name, method, path, body in cases:
                    time_calls(client, 20, method, path, body)  # warm-up
                    med, p90, p99 = summary_ms(time_calls(client, args.calls, method, path, body))
                    rows.append(f"| {name} | {med:.2f} | {p90:.2f} | {p99:.2f} |")
        finally:
            server.terminate()
            server.wait()
    table = "| call | median ms | p90 ms | p99 ms |\n|---|---|---|---|\n" + "\n".join(rows)
    print(table)
    if not args.no_write:
        append_section(
            f"HTTP latency, sequential calls on loopback ({args.calls} calls each)",
            table,
            "One client, one keep-alive connection, calls one after another; each time runs "
            "from sending the request to the parsed JSON answer.",
        )


if __name__ == "__main__":
    main()
