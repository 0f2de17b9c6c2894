"""A real `charlm serve` under hostile clients, load and shutdown.

    python tests/reliability/serve_campaign.py slow [--write]
    python tests/reliability/serve_campaign.py load [--seconds 60] [--rounds 5] [--write]
    python tests/reliability/serve_campaign.py sigterm [--write]
    python tests/reliability/serve_campaign.py workers [--write]

slow: 70 connections send headers announcing a 1,000-byte body and then one byte every
2 s, against `--max-pending 64`, while a client makes ordinary calls: how many of those
are answered, and what the slow ones get. load: 64 concurrent keep-alive clients send
/predict, /score and /generate for `--seconds`, `--rounds` times: errors, latency
percentiles and the server's memory after each round. sigterm: SIGTERM while 32 calls
and 4 streams are in flight: each must complete. workers: requests per second with one
and with two worker processes at concurrency 16.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from common import Served, record, train_small

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def requests_mix(i: int) -> tuple[str, dict[str, Any]]:
    kind = i % 4
    if kind in (0, 1):
        return "/predict", {
            "model": "notes",
            "text": "the rain " * (1 + i % 5),
            "continuation_length": i % 20,
        }
    if kind == 2:
        return "/score", {"model": "notes", "text": "the wren came back to the woodpile"}
    return "/generate", {"model": "notes", "prompt": "the ", "length": 50, "seed": i}


async def hammer(
    url: str, seconds: float, concurrency: int
) -> tuple[list[float], dict[int, int], int]:
    """`concurrency` clients, each sending its next request when its last answer is in."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures = 0
    stop = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal failures
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            i = k
            while time.monotonic() < stop:
                path, body = requests_mix(i)
                t0 = time.perf_counter()
                try:
                    r = await c.post(path, json=body)
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    latencies.append(time.perf_counter() - t0)
                except httpx.TransportError:
                    failures += 1
                i += concurrency

    await asyncio.gather(*(client(k) for k in range(concurrency)))
    return latencies, statuses, failures


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


def run_load(root: Path, args: argparse.Namespace) -> None:
    server = Served(root, "--max-pending", "1024")
    try:
        rss = [server.rss_mib()]
        total, errors, lat = 0, 0, []
        for _ in range(args.rounds):
            latencies, statuses, failures = asyncio.run(hammer(server.url, args.seconds, 64))
            total += sum(statuses.values()) + failures
            errors += failures + sum(n for s, n in statuses.items() if s != 200)
            lat += latencies
            rss.append(server.rss_mib())
            print(f"round: {statuses} failures {failures} rss {rss[-1]:.0f} MiB", flush=True)
    finally:
        server.stop()
    growth = " → ".join(f"{r:.0f}" for r in rss)
    record(
        "load",
        f"| load: 64 concurrent clients, /predict, /score, /generate mixed | {args.rounds} "
        f"rounds of {args.seconds:g} s, {total:,} requests | {errors} errors; p50 "
        f"{pct(lat, 50):.0f} ms, p99 {pct(lat, 99):.0f} ms; RSS by round (MiB): {growth}",
        write=args.write,
    )


def run_slow(root: Path, args: argparse.Namespace) -> None:
    server = Served(root, "--max-pending", "64")
    host, port = "127.0.0.1", server.port
    socks: list[socket.socket] = []
    answered: dict[str, int] = {}
    stop = threading.Event()

    def dribble() -> None:
        while not stop.wait(2.0):
            for s in socks:
                with contextlib.suppress(OSError):
                    s.send(b" ")

    try:
        for _ in range(70):
            s = socket.create_connection((host, port))
            s.sendall(
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                b"\r\nContent-Length: 1000\r\n\r\n{"
            )
            socks.append(s)
        feeder = threading.Thread(target=dribble, daemon=True)
        feeder.start()
        ok = 0
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for i in range(146):
                r = c.post("/predict", json={"model": "notes", "text": "the " + LETTERS[i % 26]})
                ok += r.status_code == 200
        for s in socks:
            s.settimeout(30)
            try:
                head = s.recv(64).split(b"\r\n", 1)[0].decode(errors="replace")
            except OSError as e:
                head = type(e).__name__
            answered[head] = answered.get(head, 0) + 1
    finally:
        stop.set()
        for s in socks:
            s.close()
        server.stop()
    slow = ", ".join(f"{n} x {h or 'closed'}" for h, n in answered.items())
    record(
        "slow",
        "| slow bodies: 70 connections announce 1,000 bytes and send one byte every 2 s; "
        "--max-pending 64 | 70 slow + 146 ordinary calls | "
        f"{ok}/146 ordinary calls answered 200; slow clients got: {slow}",
        write=args.write,
    )


def run_sigterm(root: Path, args: argparse.Namespace) -> None:
    server = Served(root)
    results: list[str] = []

    def call(i: int) -> None:
        path, body = requests_mix(i)
        try:
            r = httpx.post(server.url + path, json=body, timeout=120)
            results.append("ok" if r.status_code == 200 and r.json() else f"status {r.status_code}")
        except Exception as e:
            results.append(type(e).__name__)

    def stream(i: int) -> None:
        body = {"model": "notes", "prompt": "the ", "length": 3000, "seed": i, "stream": True}
        try:
            with httpx.stream("POST", server.url + "/generate", json=body, timeout=120) as r:
                text = "".join(r.iter_text())
            results.append("ok" if "event: done" in text else "cut stream")
        except Exception as e:
            results.append(type(e).__name__)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=call, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join()
    code = server.proc.wait(120)
    done = results.count("ok")
    others = {r: results.count(r) for r in set(results) if r != "ok"}
    record(
        "sigterm",
        f"| SIGTERM with 32 calls and 4 streams (3,000 chars each) in flight | 36 requests | "
        f"{done}/36 completed{' ' + str(others) if others else ''}; then the server exited "
        f"({how_exited(code)})",
        write=args.write,
    )


def how_exited(code: int) -> str:
    if code == -signal.SIGTERM:
        return "by the signal, which uvicorn re-raises after its graceful shutdown"
    return f"status {code}"


def run_workers(root: Path, args: argparse.Namespace) -> None:
    setups = {
        "1 worker": ["--workers", "1"],
        "2 workers": ["--workers", "2"],
        "2 workers, 2 threads each": ["--workers", "2", "--threads", "2"],
    }
    rates: dict[str, list[float]] = {name: [] for name in setups}
    for _ in range(2):
        for name, flags in setups.items():
            server = Served(root, *flags)
            try:
                asyncio.run(hammer(server.url, 3, 16))  # warm every worker
                latencies, statuses, failures = asyncio.run(hammer(server.url, args.seconds, 16))
            finally:
                server.stop()
            rates[name].append(len(latencies) / args.seconds)
            print(name, rates[name][-1], statuses, failures, flush=True)
    med = {name: statistics.median(r) for name, r in rates.items()}
    one = med["1 worker"]
    shown = "; ".join(f"{name}: {r:.0f} req/s ({r / one:.2f}x)" for name, r in med.items())
    record(
        "workers",
        "| --workers on this 2-core machine, 16 concurrent clients, mixed calls | 2 runs of "
        f"{args.seconds:g} s per setup, interleaved | {shown}. By default each worker takes "
        "its share of the free cores as threads (one each here); two threads each is what "
        "every worker used before",
        write=args.write,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("slow", "load", "sigterm", "workers"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="add the row to RELIABILITY.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "checkpoints"
        train_small(root)
        {"slow": run_slow, "load": run_load, "sigterm": run_sigterm, "workers": run_workers}[
            args.what
        ](root, args)


if __name__ == "__main__":
    main()
