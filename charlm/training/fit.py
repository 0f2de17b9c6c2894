"""From a corpus file and the user's choices to a finished training run.

`fit` reads the corpus, picks defaults for its size (see `presets`), applies the
user's overrides (a time budget without a step count lets the budget alone end the
run; a budget too short for the preset's steps on this machine picks a smaller preset,
and one too short to overfit trains without dropout: see `budget`), takes the checkpoint
directory's lock (one writer at a time), refuses to replace an existing checkpoint
unless asked to, and for `resume=True` checks that the corpus and
settings fit the checkpoint before anything is written. It chooses the runtime (device,
threads, precision) once, then hands over to `Trainer`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from charlm import checkpoint
from charlm.data import IdSplit
from charlm.download import resolve_corpus
from charlm.errors import (
    CheckpointExistsError,
    CheckpointNotFoundError,
    ConfigError,
    TrainingError,
)
from charlm.model import ModelConfig
from charlm.prepared import Corpus, load_corpus
from charlm.runtime import Runtime, pick_device
from charlm.training.budget import dropout_for_budget, fit_to_budget, time_step
from charlm.training.callbacks import CallbackList, TrainCallback, TrainResult
from charlm.training.config import TrainConfig
from charlm.training.distributed import DEFAULT_TIMEOUT_S, Cluster
from charlm.training.plotting import PlotCallback
from charlm.training.presets import Preset, preset_for, preset_named
from charlm.training.trainer import Trainer
from charlm.vocab import Vocabulary

__all__ = ["BUDGET_ONLY_MAX_STEPS", "RESUMABLE_OVERRIDES", "fit"]

log = logging.getLogger(__name__)

RESUMABLE_OVERRIDES = frozenset(
    {
        "max_steps",
        "max_minutes",
        "target_loss",
        "patience",
        "eval_interval",
        "log_interval",
        "signals",
    }
)
"""Training settings a resumed run may change; every other one must match."""

BUDGET_ONLY_MAX_STEPS = 1_000_000_000
"""`max_steps` of a run given `--max-minutes` and no `--max-steps`: the budget alone ends
it, and the learning rate decays over the budget."""


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
    if cluster.world > 1:
        if threads is None:
            threads = max(1, len(os.sched_getaffinity(0)) // cluster.local_world)
        if not cluster.main:
            callback, plots = None, False
    try:
        return _fit(
            corpus,
            directory,
            model_overrides=model_overrides,
            train_overrides=train_overrides,
            preset=preset,
            resume=resume,
            overwrite=overwrite,
            device=device,
            threads=threads,
            callback=callback,
            plots=plots,
            cluster=cluster,
        )
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


@dataclass(frozen=True)
class _Plan:
    """What a run trains: the corpus as the model reads it (its vocabulary the model's),
    the settings, and the saved run it continues (None for a fresh one)."""

    data: Corpus
    model_config: ModelConfig
    train_config: TrainConfig
    preset: str | None
    resumed: checkpoint.Checkpoint | None
    threads: int | None


def _fit(
    corpus: str | Path,
    directory: str | Path,
    *,
    model_overrides: Mapping[str, Any] | None,
    train_overrides: Mapping[str, Any] | None,
    preset: str | None,
    resume: bool,
    overwrite: bool,
    device: str,
    threads: int | None,
    callback: TrainCallback | None,
    plots: bool,
    cluster: Cluster,
) -> TrainResult:
    chosen = preset_named(preset) if preset is not None else None
    models, trains = dict(model_overrides or {}), dict(train_overrides or {})
    if resume and overwrite:
        raise ConfigError("--resume continues a checkpoint and --overwrite replaces it: pick one")
    data = load_corpus(resolve_corpus(corpus))
    directory = Path(directory)
    if resume and not checkpoint.exists(directory):
        raise CheckpointNotFoundError(f"--resume: no checkpoint at {directory} to resume")
    with checkpoint.RunLock(directory) if cluster.main else contextlib.nullcontext():
        if resume:
            plan = _resumed(directory, data, f"corpus {corpus}", chosen, models, trains, threads)
        else:
            if checkpoint.exists(directory) and not overwrite:
                raise CheckpointExistsError(
                    f"{directory} already holds a checkpoint; pass --resume to continue it, "
                    "--overwrite to replace it, or --name to train into another directory"
                )
            plan = _fresh(data, chosen, models, trains, device, threads, budget=cluster.world == 1)
        runtime = Runtime.choose(
            cluster.device(pick_device(device)),
            threads=plan.threads,
            hidden_size=plan.model_config.hidden_size,
            cell=plan.model_config.cell,
            precision=plan.train_config.precision,
        )
        tc = plan.train_config
        trainer = Trainer(
            plan.model_config,
            tc,
            plan.data.vocab,
            IdSplit.of_ids(plan.data.ids, tc.val_fraction, tc.split),
            directory,
            resume_from=plan.resumed,
            callback=CallbackList(callback, PlotCallback() if plots else None),
            runtime=runtime,
            corpus_info={**plan.data.info(), "preset": plan.preset, "processes": cluster.world},
            cluster=cluster,
        )
        return trainer.run()


def _resumed(
    directory: Path,
    data: Corpus,
    what: str,
    chosen: Preset | None,
    model_overrides: Mapping[str, Any],
    train_overrides: Mapping[str, Any],
    threads: int | None,
) -> _Plan:
    """The plan of a resumed run: the checkpoint's settings, but for the budgets the
    user may change; anything else given must match."""
    ckpt = checkpoint.load(directory)
    if not ckpt.resumable:
        raise ConfigError(f"{directory}: checkpoint has no resume state")
    data = data.in_vocabulary(ckpt.vocab, what=what)
    model_config = ckpt.model_config
    train_config = TrainConfig.from_dict(ckpt.train_config)
    _check_same(model_overrides, model_config.to_dict(), frozenset(), "model")
    _check_same(train_overrides, train_config.to_dict(), RESUMABLE_OVERRIDES, "training")
    allowed = {k: v for k, v in train_overrides.items() if k in RESUMABLE_OVERRIDES}
    train_config = TrainConfig.from_dict({**train_config.to_dict(), **allowed})
    preset_name = ckpt.summary.get("preset")
    if chosen is not None and chosen.name != preset_name:
        raise ConfigError(
            f"--preset {chosen.name} differs from the checkpoint's preset "
            f"{preset_name}; a resumed run keeps its settings"
        )
    return _Plan(data, model_config, train_config, preset_name, ckpt, threads)


def _fresh(
    data: Corpus,
    chosen: Preset | None,
    model_overrides: Mapping[str, Any],
    train_overrides: Mapping[str, Any],
    device: str,
    threads: int | None,
    *,
    budget: bool,
) -> _Plan:
    """The plan of a fresh run: the preset's settings (`chosen`, or the corpus size's)
    under the user's. With `budget` (one process), a time budget and no preset or model
    flag, a preset that fits the budget on this machine, and no dropout where the budget
    cannot overfit (`training.budget`)."""
    vocab = data.vocab
    preset_ = chosen or preset_for(data.chars)
    model_config, train_config = _configs(preset_, vocab, model_overrides, train_overrides)
    if budget and chosen is None and not model_overrides and train_config.max_minutes is not None:
        threads = Runtime.choose(device, threads=threads).threads
        fitted = fit_to_budget(
            preset_,
            train_config.max_minutes * 60,
            lambda p: time_step(
                *_configs(p, vocab, model_overrides, train_overrides), pick_device(device)
            ),
        )
        if fitted.preset is not preset_:
            log.warning("%s", fitted.describe())
            preset_ = fitted.preset
            model_config, train_config = _configs(preset_, vocab, model_overrides, train_overrides)
        train_chars = int(data.chars * (1 - train_config.val_fraction))
        model_config, said = dropout_for_budget(model_config, fitted, train_config, train_chars)
        if said:
            log.warning("%s", said)
    return _Plan(data, model_config, train_config, preset_.name, None, threads)


def _configs(
    preset: Preset,
    vocab: Vocabulary,
    model_overrides: Mapping[str, Any],
    train_overrides: Mapping[str, Any],
) -> tuple[ModelConfig, TrainConfig]:
    """A fresh run's configs: the preset's values under the user's."""
    train_values = {**preset.train, **train_overrides}
    if "max_minutes" in train_overrides and "max_steps" not in train_overrides:
        train_values["max_steps"] = BUDGET_ONLY_MAX_STEPS
    train_config = TrainConfig.from_dict(train_values)
    model_config = ModelConfig.from_dict(
        {"vocab_size": len(vocab), **preset.model_for(train_config.max_minutes), **model_overrides}
    )
    return model_config, train_config


def _check_same(
    overrides: Mapping[str, Any], saved: Mapping[str, Any], changeable: frozenset[str], what: str
) -> None:
    for key, value in overrides.items():
        if key in changeable or key not in saved:
            continue
        if saved[key] != value:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{flag} {value} differs from the checkpoint's {saved[key]}; a resumed run keeps "
                f"its {what} settings (train a new checkpoint to change them)"
            )
