"""From a corpus file and the user's choices to a finished training run.

`fit` joins torchrun's process group when it was started by it (`distributed`), takes
the checkpoint directory's lock (one writer at a time), has `plan.plan_run` resolve every
choice about the run (the corpus, fresh or resumed, the preset and the time budget's
choices, the runtime), and hands the plan to `Trainer`. A rank that stops answering ends
the run with a `TrainingError`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.distributed as dist

from charlm import checkpoint
from charlm.download import resolve_corpus
from charlm.errors import TrainingError
from charlm.prepared import load_corpus
from charlm.runtime import pick_device
from charlm.training.callbacks import CallbackList, TrainCallback, TrainResult
from charlm.training.distributed import DEFAULT_TIMEOUT_S, Cluster
from charlm.training.plan import plan_run, resume_target
from charlm.training.plotting import PlotCallback
from charlm.training.trainer import Trainer

__all__ = ["fit"]

log = logging.getLogger(__name__)


def fit(
    corpus: str | Path,
    directory: str | Path,
    *,
    model_overrides: Mapping[str, Any] | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    threads: int | None = None,
    callback: TrainCallback | None = None,
    plots: bool = True,
    dist_timeout_s: float = DEFAULT_TIMEOUT_S,
) -> TrainResult:
    """Train on `corpus`, writing checkpoints into `directory`.

    `corpus` is a text file, a prepared corpus, or the name of a downloaded known corpus
    (`download.resolve_corpus`, as `charlm train` reads it). Defaults come from `preset`
    (a name in `presets.PRESETS`), or else from the size of the corpus. `threads` None
    lets `runtime.choose_threads` decide. With `plots`, `learning_curves.png` in
    `directory` follows the run (`plotting.PlotCallback`).

    Started by torchrun as one of several processes, it trains data-parallel (see
    `distributed`): `batch_size` is the global batch, shared out among the ranks; only
    rank 0 takes the lock, writes and calls `callback`; a time budget keeps the
    corpus-size preset (the ranks would time steps differently); threads default to the
    cores divided among the machine's ranks; and a rank that stops answering ends the
    run with a `TrainingError` after `dist_timeout_s` at most.
    """
    cluster = Cluster.from_env(pick_device(device), dist_timeout_s)  # one, without torchrun
    if not cluster.main:
        callback, plots = None, False
    try:
        data = load_corpus(resolve_corpus(corpus))  # refused before the lock is taken
        with _lock(Path(directory), resume, cluster):
            plan = plan_run(
                data,
                directory,
                model_overrides=model_overrides,
                train_overrides=train_overrides,
                preset=preset,
                resume=resume,
                overwrite=overwrite,
                device=device,
                threads=threads,
                cluster=cluster,
            )
            for note in plan.notes:
                log.warning("%s", note)
            callbacks = CallbackList(callback, PlotCallback() if plots else None)
            return Trainer.from_plan(plan, callback=callbacks, cluster=cluster).run()
    except (dist.DistError, RuntimeError) as e:
        if not _lost_peer(e, cluster):
            raise
        raise TrainingError(
            f"rank {cluster.rank} of {cluster.world}: another rank stopped answering "
            f"({str(e).splitlines()[0][:200]}); the last checkpoint written is intact"
        ) from e
    finally:
        _release_frames(sys.exception())  # a traceback would keep the model, and the group
        cluster.close()


def _release_frames(error: BaseException | None) -> None:
    """Clear the local variables of the finished frames in `error`'s tracebacks (and its
    causes'), so that the model they hold can be collected before the process group is
    destroyed; the messages and line numbers stay."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        error = error.__cause__ or error.__context__


def _lost_peer(e: Exception, cluster: Cluster) -> bool:
    """Whether `e` is a collective that failed because another rank left or hung (gloo
    raises a plain RuntimeError from inside DDP's backward)."""
    if cluster.world == 1:
        return False
    text = str(e)
    return isinstance(e, dist.DistError) or any(
        word in text for word in ("gloo", "NCCL", "Connection closed", "Timed out")
    )


def _lock(
    directory: Path, resume: bool, cluster: Cluster
) -> contextlib.AbstractContextManager[Any]:
    """The checkpoint directory's one-writer lock, taken by rank 0 (a resumed run's
    checkpoint must be there first: the lock would create the directory)."""
    if resume:
        resume_target(directory)
    return checkpoint.RunLock(directory) if cluster.main else contextlib.nullcontext()
