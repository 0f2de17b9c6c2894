"""SIGKILL a real training run again and again, at random moments of its saves.

    python tests/reliability/kill_campaign.py [--kills 24] [--write]

Training saves at every step (`--eval-interval 1`), so a kill lands anywhere in a save:
while a tensor file is written, between the tensor files and the manifest, while the
manifest is replaced, during the clean-up after it, or between saves. Where each kill
landed is read from what it left behind. After every kill the checkpoint must load,
answer, and resume; at the end the run, resumed after every kill, must match an
uninterrupted run of the same steps bit for bit.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import torch
from common import CORPORA, REPO, record

from charlm import Predictor, checkpoint
from charlm.training import fit

FLAGS = ["--eval-interval", "1", "--hidden-size", "64", "--num-layers", "2", "--quiet"]
STEPS = 1000  # the whole run; the kills all land well before its end


def phase(directory: Path) -> str:
    names = [p.name for p in directory.iterdir()]
    named = set()
    manifest = directory / "checkpoint.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        named = {data["weights"], data.get("resume")}
    if any(n.startswith(".checkpoint.json") for n in names):
        return "writing the manifest"
    if any(n.endswith(".safetensors.tmp") for n in names):
        return "writing a tensor file"
    ours = [n for n in names if n.endswith(".safetensors")]
    if any(n not in named for n in ours):
        return "tensors written, manifest not yet replaced, or clean-up pending"
    return "between saves"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="add the row to RELIABILITY.md")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    where: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        directory = root / "notes"
        cmd = [sys.executable, "-m", "charlm", "train", str(CORPORA / "notes.txt")]
        cmd += ["--checkpoints-dir", str(root), "--max-steps", str(STEPS), *FLAGS]
        loaded = resumed = 0
        for attempt in range(args.kills):
            proc = subprocess.Popen(
                cmd + (["--resume"] if attempt else []), cwd=REPO, stderr=subprocess.PIPE
            )
            start = checkpoint.load(directory).summary["step"] if attempt else 0
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # wait for its first save past `start`
                try:
                    step = json.loads((directory / "checkpoint.json").read_text())["summary"][
                        "step"
                    ]
                except (OSError, ValueError, KeyError):
                    step = -1
                if step > start:
                    break
                if proc.poll() is not None:
                    raise SystemExit(proc.stderr.read().decode() if proc.stderr else "died")
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            where[phase(directory)] += 1
            ckpt = checkpoint.load(directory)
            assert ckpt.resumable
            Predictor.from_checkpoint(directory).predict("the ")
            loaded += 1
            resumed += int(attempt > 0)
        killed_at = checkpoint.load(directory).summary["step"]
        subprocess.run([*cmd, "--resume"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        final = checkpoint.load(directory).summary["step"]
        fit(
            CORPORA / "notes.txt",
            root / "straight",
            model_overrides={"hidden_size": 64, "num_layers": 2},
            train_overrides={"eval_interval": 1, "max_steps": STEPS},
            plots=False,
        )
        a = checkpoint.load(directory).load_resume().to_tensors()
        b = checkpoint.load(root / "straight").load_resume().to_tensors()
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    phases = ", ".join(f"{n} {p}" for p, n in where.most_common())
    record(
        "kill",
        f"| SIGKILL during training (saves every step) | {args.kills} kills: {phases} | "
        f"{loaded}/{args.kills} loaded and answered; {resumed} resumed (last kill at step "
        f"{killed_at}); weights, optimiser, state and RNG after {final} steps "
        f"{'bit-identical to' if same else 'DIFFERENT from'} an uninterrupted run",
        write=args.write,
    )
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
