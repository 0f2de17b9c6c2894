"""A real `charlm serve` under hostile clients, load and shutdown.

    python tests/reliability/serve_campaign.py slow [--write]
    python tests/reliability/serve_campaign.py load [--seconds 60] [--rounds 5] [--write]
    python tests/reliability/serve_campaign.py sigterm [--write]
    python tests/reliability/serve_campaign.py workers [--write]
    python tests/reliability/serve_campaign.py killworker [--rounds 5] [--write]

slow: 70 connections send headers announcing a 1,000-byte body and then one byte every
2 s, against `--max-pending 64`, while a client makes ordinary calls: how many of those
are answered, and what the slow ones get. load: 64 concurrent keep-alive clients send
/predict, /score and /generate for `--seconds`, `--rounds` times: errors, latency
percentiles and the server's memory after each round. sigterm: SIGTERM while 32 calls
and 4 streams are in flight: each must complete. workers: requests per second with one
and with two worker processes at concurrency 16. killworker: SIGKILL one of two workers
while 8 clients call /predict, each on a new connection with a 30 s timeout: what the
calls in flight and those sent in the next 3 s get and how long they take, when a
replacement serves, and whether the idle server still counts the dead worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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


def worker_pids(url: str) -> set[int]:
    """The worker processes /metrics lists (each has a memory series)."""
    text = httpx.get(url + "/metrics", timeout=30).text
    prefix = 'charlm_process_resident_memory_bytes{pid="'
    return {
        int(line[len(prefix) :].split('"')[0])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def kill_round(root: Path) -> dict[str, Any]:
    server = Served(root, "--workers", "2")
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2:  # each scrape is answered by either worker
            if time.monotonic() > deadline:
                raise RuntimeError(f"/metrics listed {workers}, not two workers")
            workers |= worker_pids(server.url)
        body = {"model": "notes", "text": "the rain " * 20, "continuation_length": 200}
        calls: list[tuple[float, float, str]] = []  # (start, end, outcome)
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                start = time.monotonic()
                try:
                    r = httpx.post(server.url + "/predict", json=body, timeout=30)
                    outcome = str(r.status_code)
                except httpx.TimeoutException:
                    outcome = "timed out"
                except httpx.TransportError:
                    outcome = "failed"
                calls.append((start, time.monotonic(), outcome))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(3)
        victim = min(workers)
        killed = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        back = None
        while time.monotonic() - killed < 10:
            if back is None and len(worker_pids(server.url) - {victim}) == 2:
                back = time.monotonic() - killed
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join()
        time.sleep(1)
        pending = httpx.get(server.url + "/health").json()["pending"]
        dead_listed = victim in worker_pids(server.url)
    finally:
        server.stop()
    in_flight = [c for c in calls if c[0] <= killed < c[1]]
    after = [c for c in calls if killed <= c[0] < killed + 3]
    return {
        "answered": sum(c[2] == "200" for c in in_flight),
        "failed": [c[1] - killed for c in in_flight if c[2] == "failed"],
        "other": [c[2] for c in in_flight + after if c[2] not in ("200", "failed")],
        "after": [c[1] - c[0] for c in after if c[2] == "200"],
        "after_failed": sum(c[2] != "200" for c in after),
        "back": back,
        "pending": pending,
        "dead_listed": dead_listed,
    }


def run_killworker(root: Path, args: argparse.Namespace) -> None:
    rounds = [kill_round(root) for _ in range(args.rounds)]
    for r in rounds:
        slowest = max(r["after"], default=0)
        print(
            f"{r['answered']} answered, {len(r['failed'])} failed; after: slowest {slowest:.2f} s"
        )
    answered = sum(r["answered"] for r in rounds)
    failed = [t for r in rounds for t in r["failed"]]
    after = [t for r in rounds for t in r["after"]]
    backs = [r["back"] for r in rounds if r["back"] is not None]
    others = [o for r in rounds for o in r["other"]]  # timed out, or a status not 200
    record(
        "killworker",
        f"| SIGKILL one of 2 workers while 8 clients call /predict (a new connection each, "
        f"30 s timeout) | {args.rounds} kills | in flight at the kill: {answered} answered, "
        f"{len(failed)} failed at once (connection reset, at most "
        f"{max(failed, default=0):.2f} s after the kill){f', other: {others}' if others else ''}"
        f"; sent in the 3 s after: {len(after)} answered (slowest {max(after, default=0):.2f} s), "
        f"{sum(r['after_failed'] for r in rounds)} failed; replacement listed "
        f"{min(backs, default=0):.1f}-{max(backs, default=0):.1f} s after the kill; idle "
        f"/health pending {[r['pending'] for r in rounds]}, dead worker's series listed in "
        f"{sum(r['dead_listed'] for r in rounds)} of {args.rounds}",
        write=args.write,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("slow", "load", "sigterm", "workers", "killworker"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="add the row to RELIABILITY.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "checkpoints"
        train_small(root)
        runs = {"slow": run_slow, "load": run_load, "sigterm": run_sigterm, "workers": run_workers}
        runs["killworker"] = run_killworker
        runs[args.what](root, args)


if __name__ == "__main__":
    main()
