"""A run's plan: every choice about a training run, made in one pass before it starts.

`plan_run` resolves, in order: the corpus (a file, a prepared corpus or a known corpus's
name), whether the run is fresh or resumed (and, resumed, that the corpus and settings
fit the checkpoint), the preset (the one named, or the corpus size's), the user's
settings over the preset's, a smaller preset when a time budget is too short for this
one on this machine, no dropout when the budget is too short to overfit (both in
`budget`), and the runtime: device, threads and precision (`runtime.Runtime`). The
`RunPlan` it returns is what `Trainer.from_plan` trains; nothing is decided later.

`RunPlan.settings_text` writes the plan as a settings file with the rest in comments:
`charlm train --dry-run` prints it, and `--config` reads it back to the same settings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from charlm import checkpoint
from charlm.data import check_shares
from charlm.download import resolve_corpus
from charlm.errors import CheckpointExistsError, CheckpointNotFoundError, ConfigError
from charlm.model import ModelConfig
from charlm.prepared import Corpus, load_corpus
from charlm.runtime import Runtime, pick_device
from charlm.train_config import TrainConfig
from charlm.training.budget import dropout_for_budget, fit_to_budget, time_step
from charlm.training.distributed import Cluster
from charlm.training.presets import Preset, preset_for, preset_named
from charlm.training.settings_file import settings_text
from charlm.vocab import Vocabulary

__all__ = ["BUDGET_ONLY_MAX_STEPS", "RESUMABLE_OVERRIDES", "RunPlan", "plan_run", "resume_target"]

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


@dataclass(frozen=True)
class RunPlan:
    """What a run trains, where, and on what: every setting resolved."""

    data: Corpus
    """The corpus as the model reads it (a resumed run's: in the checkpoint's ids)."""
    directory: Path
    model_config: ModelConfig
    train_config: TrainConfig
    preset: str | None
    runtime: Runtime
    processes: int
    """Data-parallel ranks (1 without torchrun); `batch_size` is shared out among them."""
    resumed: checkpoint.Checkpoint | None
    """The saved run this one continues; None for a fresh run."""
    notes: tuple[str, ...] = ()
    """What the plan changed from what was asked, and why (the budget's choices)."""

    def settings_text(self) -> str:
        """The plan as a settings file: the settings `--config` reads, after comments
        giving the corpus, the checkpoint, the runtime and the notes."""
        device, threads = self.runtime.device, self.runtime.threads
        start = f"resumes step {self.resumed.summary.get('step')}" if self.resumed else "fresh"
        lines = [
            f"corpus: {self.data.source} ({self.data.chars:,} characters, "
            f"{len(self.data.vocab)} distinct)",
            f"checkpoint: {self.directory} ({start})",
            f"runtime: {device}, {threads} thread{'s' if threads != 1 else ''}, "
            f"{'bf16 autocast' if self.runtime.bf16 else 'fp32'}"
            + (f", {self.processes} processes" if self.processes > 1 else ""),
            *(f"note: {note}" for note in self.notes),
        ]
        model = {k: v for k, v in self.model_config.to_dict().items() if k != "vocab_size"}
        return settings_text(
            model, self.train_config.to_dict(), "\n".join(lines), preset=self.preset
        )


def plan_run(
    corpus: str | Path | Corpus,
    directory: str | Path,
    *,
    model_overrides: Mapping[str, Any] | None = None,
    train_overrides: Mapping[str, Any] | None = None,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    threads: int | None = None,
    cluster: Cluster | None = None,
) -> RunPlan:
    """The plan of `charlm.fit` with these arguments (see there), for this process's
    place in `cluster` (one process when None). Reads the corpus (unless given one
    already read) and any checkpoint in `directory`; writes nothing. With a time
    budget, it times a few steps of each preset it considers."""
    cluster = cluster or Cluster.single()
    if resume and overwrite:
        raise ConfigError("--resume continues a checkpoint and --overwrite replaces it: pick one")
    if threads is None and cluster.world > 1:  # the machine's cores shared among its ranks
        threads = max(1, len(os.sched_getaffinity(0)) // cluster.local_world)
    chosen = preset_named(preset) if preset is not None else None
    models, trains = dict(model_overrides or {}), dict(train_overrides or {})
    data = corpus if isinstance(corpus, Corpus) else load_corpus(resolve_corpus(corpus))
    directory = Path(directory)
    if resume:
        resumed = checkpoint.load(resume_target(directory))
        data, model_config, train_config, name = _resumed(
            resumed, data, f"corpus {data.source}", chosen, models, trains
        )
        notes: tuple[str, ...] = ()
    else:
        if checkpoint.exists(directory) and not overwrite:
            raise CheckpointExistsError(
                f"{directory} already holds a checkpoint; pass --resume to continue it, "
                "--overwrite to replace it, or --name to train into another directory"
            )
        resumed = None
        budget = cluster.world == 1  # the ranks would time steps differently
        model_config, train_config, name, notes, threads = _fresh(
            data, chosen, models, trains, device, threads, budget=budget
        )
    check_shares(train_config.batch_size, cluster.world)
    runtime = Runtime.choose(
        cluster.device(pick_device(device)),
        threads=threads,
        hidden_size=model_config.hidden_size,
        cell=model_config.cell,
        precision=train_config.precision,
    )
    return RunPlan(
        data, directory, model_config, train_config, name, runtime, cluster.world, resumed, notes
    )


def resume_target(directory: Path) -> Path:
    """`directory`, where `--resume` asks for a checkpoint; CheckpointNotFoundError when
    there is none."""
    if not checkpoint.exists(directory):
        raise CheckpointNotFoundError(f"--resume: no checkpoint at {directory} to resume")
    return directory


def _resumed(
    ckpt: checkpoint.Checkpoint,
    data: Corpus,
    what: str,
    chosen: Preset | None,
    model_overrides: Mapping[str, Any],
    train_overrides: Mapping[str, Any],
) -> tuple[Corpus, ModelConfig, TrainConfig, str | None]:
    """A resumed run's corpus, configs and preset: the checkpoint's, but for the budgets
    the user may change; anything else given must match."""
    if not ckpt.resumable:
        raise ConfigError(f"{ckpt.path}: checkpoint has no resume state")
    data = data.in_vocabulary(ckpt.vocab, what=what)
    model_config, train_config = ckpt.model_config, ckpt.train_config
    _check_same(model_overrides, model_config.to_dict(), frozenset(), "model")
    _check_same(train_overrides, train_config.to_dict(), RESUMABLE_OVERRIDES, "training")
    allowed = {k: v for k, v in train_overrides.items() if k in RESUMABLE_OVERRIDES}
    train_config = replace(train_config, **allowed)
    preset_name = ckpt.summary.get("preset")
    if chosen is not None and chosen.name != preset_name:
        raise ConfigError(
            f"--preset {chosen.name} differs from the checkpoint's preset "
            f"{preset_name}; a resumed run keeps its settings"
        )
    return data, model_config, train_config, preset_name


def _fresh(
    data: Corpus,
    chosen: Preset | None,
    model_overrides: Mapping[str, Any],
    train_overrides: Mapping[str, Any],
    device: str,
    threads: int | None,
    *,
    budget: bool,
) -> tuple[ModelConfig, TrainConfig, str, tuple[str, ...], int | None]:
    """A fresh run's configs, preset, notes and threads: the preset's settings
    (`chosen`, or the corpus size's) under the user's. With `budget` (one process), a
    time budget and no preset or model flag, a preset that fits the budget on this
    machine, and no dropout where the budget cannot overfit (`training.budget`)."""
    vocab = data.vocab
    preset_ = chosen or preset_for(data.chars)
    model_config, train_config = _configs(preset_, vocab, model_overrides, train_overrides)
    notes: list[str] = []
    if budget and chosen is None and not model_overrides and train_config.max_minutes is not None:
        threads = Runtime.choose(device, threads=threads).threads  # the steps timed at it
        fitted = fit_to_budget(
            preset_,
            train_config.max_minutes * 60,
            lambda p: time_step(
                *_configs(p, vocab, model_overrides, train_overrides), pick_device(device)
            ),
        )
        if fitted.preset is not preset_:
            notes.append(fitted.describe())
            preset_ = fitted.preset
            model_config, train_config = _configs(preset_, vocab, model_overrides, train_overrides)
        train_chars = int(data.chars * (1 - train_config.val_fraction))
        model_config, said = dropout_for_budget(model_config, fitted, train_config, train_chars)
        if said:
            notes.append(said)
    return model_config, train_config, preset_.name, tuple(notes), threads


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
