"""Memory of the HTTP service per loaded model: resident set size against models served.

    python bench/serve_memory.py [--models 0 1 2 4] [--before REV]

Writes copies of one 2-layer, 512-unit checkpoint (65 symbols, embedding 64: 3.3 M
parameters, 13 MB of float32 weights), starts `charlm serve` on 0, 1, 2 and 4 of them,
has every model answer a /predict with a continuation (so that generation's stepper is
built too), and reads the server's resident set size from /proc. The slope is the
memory each served model costs. With `--before REV`, the same is measured, in the same
run and alternating with this tree's code, for the charlm of git revision REV (checked
out into a temporary worktree), so the two columns compare side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import string
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import torch
from common import charlm_of, code_trees, free_port, report, wait_ready

from charlm import ModelConfig, Vocabulary, checkpoint
from charlm.model import CharRNN
from charlm.train_config import TrainConfig

VOCAB = sorted(" !?" + string.ascii_letters + string.digits)  # 65, as tiny Shakespeare


def write_models(root: Path, count: int) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=65, embedding_dim=64, hidden_size=512, num_layers=2)
    weights = CharRNN(cfg).state_dict()
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        checkpoint.save(
            root / f"m{i}",
            model_config=cfg,
            train_config=TrainConfig(),
            vocab=Vocabulary(VOCAB),
            summary={"step": 1},
            weights=weights,
        )


@contextlib.contextmanager
def serving(
    code: Path, checkpoints: Path, flag: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    cmd = [*charlm_of(code), "serve", flag, str(checkpoints), "--port", str(port)]
    cmd += ["--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=code, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, proc, timeout_s=120)  # several models to load
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure(code: Path, root: Path, count: int) -> float:
    flag = "--checkpoints-dir" if (code / "charlm" / "flags.py").exists() else "--checkpoints"
    with serving(code, root / f"n{count}", flag) as (proc, url):
        models = httpx.get(url + "/models", timeout=120).json()["models"]
        assert len(models) == count, models
        for m in models:
            body = {"model": m["name"], "text": "the rain", "continuation_length": 20}
            assert httpx.post(url + "/predict", json=body, timeout=120).status_code == 200
        time.sleep(0.5)
        return rss_mib(proc.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--before", help="git revision to compare with (e.g. a commit)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in args.models:
            write_models(root / f"n{n}", n)
        with code_trees(args.before, root, now="this tree") as codes:
            rss: dict[str, dict[int, list[float]]] = {
                c: {n: [] for n in args.models} for c in codes
            }
            for _ in range(args.repeats):
                for n in args.models:
                    for name, code in codes.items():
                        rss[name][n].append(measure(code, root, n))
                        print(name, n, rss[name][n][-1], flush=True)
    med = {c: {n: statistics.median(v) for n, v in per.items()} for c, per in rss.items()}
    lo, hi = sorted(args.models)[1], max(args.models)  # the first model pays one-time costs
    rows = []
    for name in codes:
        cells = " | ".join(f"{med[name][n]:,.0f}" for n in args.models)
        slope = (med[name][hi] - med[name][lo]) / (hi - lo)
        rows.append(f"| {name} | {cells} | {slope:,.1f} |")
    head = " | ".join(f"{n} models" for n in args.models)
    table = f"| code | {head} | MiB per model |\n|---|" + "---|" * len(args.models) + "---|\n"
    table += "\n".join(rows)
    notes = (
        "Resident set size (MiB) of the `charlm serve` process once every model is loaded "
        "and has answered a /predict with a 20-character continuation; median of "
        f"{args.repeats} starts. Each model: 2 x 512 LSTM, embedding 64, 65 symbols, "
        "3.3 M parameters (12.6 MiB of float32 weights). MiB per model is the slope from "
        f"{lo} to {hi} models: the first model served also pays one-time costs (the math "
        "libraries' kernels and buffers, the inference code paths), about the difference "
        "between the first two columns less one model."
    )
    report("Service memory per loaded model", table, notes, write=not args.no_write)


if __name__ == "__main__":
    main()
