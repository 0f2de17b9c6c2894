"""`charlm train --nproc N`: start N training processes on this machine through torchrun.

The launch is torchrun's own (`torch.distributed.run`, standalone rendezvous on a free
local port, no restarts), running `python -m charlm train ...` in each process with the
same arguments less `--nproc`. When a process fails, torchrun ends the others; this
module turns its report into one line: a rank that exited with charlm's own error code
has already said why, and a rank killed by a signal is named with the signal.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch.distributed import run as torchrun
from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

from charlm.errors import TrainingError

__all__ = ["launch", "without_nproc"]

_OWN_CODES = (2, 130)
"""Exit codes with which a charlm process has already said what happened."""


def without_nproc(argv: Sequence[str]) -> list[str]:
    """`argv` less `--nproc N` / `--nproc=N`."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(nproc: int, train_argv: Sequence[str]) -> int:
    """Run `charlm <train_argv>` in `nproc` processes; the exit code of the run."""
    # torchrun would set one thread per process, with a warning; charlm divides the cores
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // nproc)))
    args = torchrun.parse_args(  # type: ignore[no-untyped-call]
        [
            "--standalone",
            f"--nproc-per-node={nproc}",
            "--max-restarts=0",
            "--module",
            "charlm",
            *train_argv,
        ]
    )
    try:
        torchrun.run(args)  # type: ignore[no-untyped-call]
    except SignalException as e:  # Ctrl-C reached the workers too; rank 0 has said what it kept
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        codes = {f.exitcode for f in e.failures.values()}
        if codes <= set(_OWN_CODES):
            return max(codes)
        rank, first = e.get_first_failure()  # the others were ended because of it
        how = f"was killed by {first.signal_name()}" if first.exitcode < 0 else "failed"
        if first.exitcode > 0:
            how = f"exited with code {first.exitcode}"
        raise TrainingError(
            f"rank {rank} (pid {first.pid}) {how}, so the {nproc}-process run stopped; "
            "the last checkpoint written is intact"
        ) from e
    return 0
