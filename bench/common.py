"""Shared by the benchmark scripts: machine description, timing summaries, appending a
section to BENCHMARKS.md, the code of an earlier revision to compare with, and busy
loops beside a measurement."""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "BENCHMARKS.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(seconds: list[float]) -> tuple[float, float, float]:
    """Median, p90 and p99 in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return statistics.median(ms), percentile(ms, 90), percentile(ms, 99)


def report(title: str, table: str, notes: str, *, write: bool) -> None:
    """Print a benchmark's table and notes; with `write`, also append them to BENCHMARKS.md."""
    print(table)
    print(notes)
    if write:
        append_section(title, table, notes)


def append_section(title: str, table: str, notes: str = "") -> None:
    """Add a dated section with the command that produced it to BENCHMARKS.md."""
    command = "python " + " ".join(
        [str(Path(sys.argv[0]).resolve().relative_to(REPO)), *sys.argv[1:]]
    )
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = f"\n## {title}\n\n{when}; {machine()}\n\nCommand: `{command}`\n\n{table}\n"
    if notes:
        text += f"\n{notes}\n"
    if not BENCHMARKS.exists():
        BENCHMARKS.write_text(
            "# Benchmarks\n\nEach section was written by the script and command it names; "
            "figures within a section were measured side by side in one run.\n"
        )
    with open(BENCHMARKS, "a", encoding="utf-8") as f:
        f.write(text)


_RUN_TREE = """
import importlib.util, sys
code = sys.argv[1]
sys.path.insert(0, code)
# The service is installed as `charlm_service`; take that name from this tree's service/.
spec = importlib.util.spec_from_file_location(
    "charlm_service", code + "/service/__init__.py", submodule_search_locations=[code + "/service"]
)
module = importlib.util.module_from_spec(spec)
sys.modules["charlm_service"] = module
spec.loader.exec_module(module)
from charlm.cli import main
sys.exit(main(sys.argv[2:]))
"""


def charlm_of(code: Path) -> list[str]:
    """The command that runs `charlm` (the CLI, and the service it starts) from the source
    tree `code`, whatever charlm is installed; run it with `cwd=code`."""
    return [sys.executable, "-c", _RUN_TREE, str(code)]


@contextlib.contextmanager
def code_trees(before: str | None, root: Path, now: str = "now") -> Iterator[dict[str, Path]]:
    """Source trees to measure, by label: this checkout, and with `before` that revision
    checked out into a temporary git worktree under `root` (listed first, removed on
    exit)."""
    codes = {now: REPO}
    worktree = root / "before"
    if before:
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), before],
            cwd=REPO,
            check=True,
            capture_output=True,
        )
        codes = {f"before ({before[:10]})": worktree, **codes}
    try:
        yield codes
    finally:
        if before:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=REPO,
                check=False,
                capture_output=True,
            )


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy_loops(n: int) -> Iterator[None]:
    """`n` busy-looping processes beside the block (what `stress --cpu N` does), as on a
    machine shared with other work; none for n = 0."""
    hogs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(n)]
    for h in hogs:
        h.start()
    if hogs:
        time.sleep(1.0)
    try:
        yield
    finally:
        for h in hogs:
            h.terminate()


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Until the server `process` accepts connections on `port` (uvicorn binds its socket
    only once the app has started); exit, the process killed, if it dies or takes longer
    than `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    process.kill()
    raise SystemExit("server did not start")
