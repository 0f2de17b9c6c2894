"""Every hostile checkpoint of tests/hostile.py through the CLI, server start-up and hot reload.

    python tests/reliability/hostile_campaign.py [--write]

Each case is a fresh `charlm predict` process (it must exit 2 with one line on stderr,
within 60 s), then all of them sit beside a good model when a server starts (it must
start, serve the good one, and list each bad one as that model's error), and then all of
them are copied into a running server's folder and picked up by POST /models/reload.
No answer may be a 5xx other than the 503 of a model that does not load, and none may
hold a path of the server's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx
from common import REPO, Served, record, train_small

sys.path.insert(0, str(REPO))
from tests.hostile import SERVED_ONLY, make_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="add the row to RELIABILITY.md")
    args = parser.parse_args()
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        good = train_small(root / "source", "good")
        cases = make_all(good, root / "checkpoints")
        shutil.copytree(good, root / "checkpoints" / "good")
        slowest = 0.0
        for name, what in cases.items():
            if name in SERVED_ONLY:
                continue
            t0 = time.monotonic()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "charlm",
                    "predict",
                    str(root / "checkpoints" / name),
                    "the",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=REPO,
            )
            slowest = max(slowest, time.monotonic() - t0)
            lines = proc.stderr.strip().splitlines()
            if proc.returncode != 2 or len(lines) != 1 or "Traceback" in proc.stderr:
                problems.append(f"cli {name} ({what}): {proc.returncode} {proc.stderr[-300:]}")
        listed = {n for n in cases if (root / "checkpoints" / n / "checkpoint.json").is_file()}

        def check(server: Served, label: str) -> None:
            with httpx.Client(base_url=server.url, timeout=120) as c:
                for path, body in (("/models", None), ("/models/reload", {})):
                    r = c.get(path) if body is None else c.post(path, json=body)
                    errors = r.json().get("errors", {})
                    if r.status_code != 200 or set(errors) != listed or tmp in r.text:
                        problems.append(f"{label} {path}: {r.status_code} {sorted(errors)[:5]}")
                for name in sorted(listed):
                    r = c.post("/predict", json={"model": name, "text": "the"})
                    if r.status_code != 503 or tmp in r.text:
                        problems.append(f"{label} predict {name}: {r.status_code} {r.text[:200]}")
                if c.post("/predict", json={"model": "good", "text": "the"}).status_code != 200:
                    problems.append(f"{label}: the good model stopped answering")

        t0 = time.monotonic()
        server = Served(root / "checkpoints")
        started = time.monotonic() - t0
        try:
            check(server, "start-up")
        finally:
            server.stop()
        live = root / "live"
        shutil.copytree(good, live / "good")
        server = Served(live)
        try:
            for name in cases:
                source = root / "checkpoints" / name
                if source.is_symlink():
                    (live / name).symlink_to(source.resolve())
                else:
                    shutil.copytree(source, live / name, symlinks=True)
            check(server, "hot reload")
        finally:
            server.stop()
    for p in problems:
        print("PROBLEM", p)
    record(
        "hostile",
        f"| hostile checkpoints (tests/hostile.py), each through `charlm predict`, server "
        f"start-up and hot reload | {len(cases)} cases ({len(listed)} with a checkpoint.json) | "
        f"{len(cases) - len(SERVED_ONLY) - len([p for p in problems if p.startswith('cli')])}/"
        f"{len(cases) - len(SERVED_ONLY)} refused by the CLI in one line, exit 2 (slowest "
        f"{slowest:.1f} s; the {len(SERVED_ONLY)} links out of the folder are refused by the "
        f"server only); server up in {started:.1f} s beside "
        f"them; every case listed as its model's error at start-up and on reload, each "
        f"/predict to one a 503 naming it, the good model answering throughout; "
        f"{len(problems)} problems",
        write=args.write,
    )
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
