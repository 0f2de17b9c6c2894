"""Shared by the reliability campaigns: paths, a served process, RSS, and RELIABILITY.md rows."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

REPO = Path(__file__).resolve().parents[2]
RELIABILITY = REPO / "RELIABILITY.md"
CORPORA = REPO / "corpora"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """`charlm serve` in a child process on a free loopback port."""

    def __init__(self, checkpoints: Path, *flags: str, log: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "charlm", "serve", "--checkpoints-dir", str(checkpoints)]
        cmd += ["--port", str(self.port), "--log-level", "warning", *flags]
        out = open(log or os.devnull, "w")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("server did not start")

    def rss_mib(self) -> float:
        """Resident memory of the server and its worker processes."""
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) / 1024
            except OSError:
                pass
        return total

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def train_small(checkpoints: Path, name: str = "notes", steps: int = 60) -> Path:
    """A small real model (notes corpus, 2 x 32) to serve."""
    from charlm.training import fit

    directory = checkpoints / name
    fit(
        CORPORA / "notes.txt",
        directory,
        model_overrides={"num_layers": 2, "hidden_size": 32},
        train_overrides={"max_steps": steps},
        plots=False,
    )
    return directory


def record(section: str, row: str, *, write: bool) -> None:
    """Print a result row; with `write`, add it under `section` in RELIABILITY.md."""
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    command = "python " + " ".join(
        [str(Path(sys.argv[0]).resolve().relative_to(REPO)), *sys.argv[1:]]
    )
    line = f"{row} | `{command}` | {when} |"
    print(line)
    if write:
        text = RELIABILITY.read_text(encoding="utf-8")
        marker = f"<!-- {section} -->"
        if marker not in text:
            raise SystemExit(f"RELIABILITY.md has no {marker} line")
        RELIABILITY.write_text(text.replace(marker, f"{line}\n{marker}"), encoding="utf-8")
