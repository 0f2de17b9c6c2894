"""Running a sweep: the Optuna study, its storage, and one training run per trial.

`open_study` creates the study in its storage or joins it (SQLite by default; any
SQLAlchemy URL, such as PostgreSQL's, lets processes on several machines share one), so
that several `charlm sweep` processes given the same storage and study name work on one
study: Optuna numbers its trials uniquely across them, and each trial trains into
`trial-NNNN` under the sweep's directory, NNNN being that number. Each process draws
from its own TPE sampler; with no seed, each gets a random one, so that two processes
started together do not propose the same settings.

A trial (`Objective`) is a client of the library: it draws settings from the `Space` and
calls `training.fit` with them and the time budget, without plots. `PruneCallback`
reports every evaluation's validation loss to the trial and, when the study's median
pruner says the trial is worse than the others were at that step, ends the run; the
trial then counts as pruned. The objective is the run's best validation loss. Each
trial keeps its settings and result as user attributes, which `report` reads.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from charlm.errors import ConfigError, TrainingError
from charlm.sweep.space import Space
from charlm.training import TrainCallback, fit
from charlm.training.callbacks import EvalInfo, TrainingRun

__all__ = [
    "DATABASE_FILE",
    "PRUNED",
    "STARTUP_TRIALS",
    "Objective",
    "PruneCallback",
    "check_storage",
    "default_storage",
    "open_storage",
    "open_study",
    "run_trials",
    "shown_url",
    "trial_directory",
]

DATABASE_FILE = "sweep.db"
"""The SQLite file, in the sweep's directory, of a sweep given no `--storage`."""
PRUNED = "pruned"
"""The `stop_reason` of a run ended by the pruner."""
STARTUP_TRIALS = 3
"""Trials that finish before the pruner prunes any (it needs something to compare with)."""
SQLITE_TIMEOUT_S = 60
"""How long a process waits for another's write to a SQLite study before failing."""
HEARTBEAT_S = 60
"""A running trial says it is alive this often; one silent for `GRACE_S` (its process
was killed) is marked failed by the next process that starts a trial."""
GRACE_S = 180


def trial_directory(out: Path, number: int) -> Path:
    return out / f"trial-{number:04d}"


def default_storage(out: Path) -> str:
    """The SQLite URL of `sweep.db` in `out` (absolute, so that it names one file
    whatever the working directory)."""
    return f"sqlite:///{(out / DATABASE_FILE).resolve()}"


def shown_url(url: str) -> str:
    """`url` without its password, for messages and reports."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def check_storage(url: str) -> None:
    """Refuse, with a ConfigError, a storage that cannot keep a study: an SQLite database
    in memory (`sqlite://`, `sqlite:///:memory:`, a `file:` URI in memory) belongs to the
    connection that made it. Optuna's heartbeat thread, on a connection of its own, finds
    no tables there, and nothing of the study is left when the process exits."""
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return  # open_storage says why
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database or ""
    if str(parsed.query.get("uri", "")).lower() == "true":
        database = database.removeprefix("file:")
    if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
        shown = url if parsed.password is None else shown_url(url)  # as typed: no %3A
        raise ConfigError(
            f"--storage {shown} is a database in memory, which ends with this "
            "process and the study with it; give a file (e.g. sqlite:///sweep.db), or "
            "leave --storage out for sweep.db in the sweep's directory"
        )


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """The study storage at the SQLAlchemy URL `url`; ConfigError, with the URL (its
    password hidden) and the reason, when it cannot be opened or cannot keep a study
    (`check_storage`)."""
    where = f"--storage {shown_url(url)}"
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as e:
        raise ConfigError(
            f"{where}: not a database URL (e.g. sqlite:///sweep.db or "
            "postgresql://user:password@host/database)"
        ) from e
    check_storage(url)
    dialect = parsed.get_backend_name()
    if parsed.drivername == "postgresql":
        # The driver `charlm[postgres]` installs (SQLAlchemy 2.1 would pick psycopg 3);
        # a URL that names its driver (postgresql+psycopg://) keeps it.
        url = parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    if dialect == "sqlite":
        # Concurrent processes wait for each other's writes rather than fail.
        engine_kwargs: dict[str, Any] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(_OPEN_ATTEMPTS):
        try:
            return _rdb_storage(url, engine_kwargs)
        except ImportError as e:
            extra = " (pip install 'charlm[postgres]')" if dialect == "postgresql" else ""
            missing = e.__cause__ or e
            raise ConfigError(f"{where}: no driver for {dialect}: {missing}{extra}") from e
        except sqlalchemy.exc.NoSuchModuleError as e:
            raise ConfigError(f"{where}: unknown database kind {dialect!r}") from e
        except sqlalchemy.exc.SQLAlchemyError as e:
            if _created_meanwhile(e) and attempt + 1 < _OPEN_ATTEMPTS:
                time.sleep(0.2 * (attempt + 1))
                continue
            reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
            raise ConfigError(f"{where}: cannot open it: {reason}") from e
    raise AssertionError("unreachable")


_OPEN_ATTEMPTS = 5


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():  # "heartbeat_interval is an experimental feature"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S
        )


def _created_meanwhile(e: sqlalchemy.exc.SQLAlchemyError) -> bool:
    """Whether `e` says that another process created the storage's tables while this
    one did (processes started together race to create them); opening again then works."""
    return isinstance(e, sqlalchemy.exc.IntegrityError) or "already exists" in str(e)


def open_study(
    storage: optuna.storages.BaseStorage, name: str, *, seed: int | None = None
) -> optuna.Study:
    """The study `name` in `storage`, created if it is not there yet (minimising the
    validation loss), with this process's TPE sampler (seeded with `seed`; None: a
    random seed) and a median pruner."""
    return optuna.create_study(
        storage=storage,
        study_name=name,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS),
        direction="minimize",
        load_if_exists=True,
    )


class PruneCallback(TrainCallback):
    """Reports each evaluation's validation loss to `trial`, and ends the run when the
    pruner says so (the run's `stop_reason` is then `PRUNED`)."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.trainer: TrainingRun | None = None

    def on_start(self, trainer: TrainingRun) -> None:
        self.trainer = trainer

    def on_eval(self, info: EvalInfo) -> None:
        assert self.trainer is not None
        self.trial.report(info.val_loss, info.step)
        if self.trainer.stop_reason:
            return  # the run ends here on its own: its result is complete
        if self.trial.should_prune():
            # The trainer's evaluation (Trainer._evaluate_and_save) calls on_eval last,
            # after this evaluation's checkpoint is written, then shares the stop reason
            # with every rank; Trainer.run steps `while not self.stop_reason`. So setting
            # it ends the run cleanly right after this evaluation (tests/test_sweep.py).
            self.trainer.stop_reason = PRUNED


class Objective:
    """One trial: settings drawn from `space`, a training run of `minutes` on `corpus`
    into `trial-NNNN` under `out`; its value is the run's best validation loss."""

    def __init__(
        self,
        corpus: Path,
        out: Path,
        space: Space,
        minutes: float,
        *,
        device: str = "auto",
        threads: int | None = None,
    ) -> None:
        self.corpus = corpus
        self.out = out
        self.space = space
        self.minutes = minutes
        self.device = device
        self.threads = threads

    def __call__(self, trial: optuna.Trial) -> float:
        model, train = self.space.suggest(trial)
        train["max_minutes"] = self.minutes
        directory = trial_directory(self.out, trial.number)
        trial.set_user_attr("model", model)
        trial.set_user_attr("train", train)
        trial.set_user_attr("preset", self.space.preset)
        trial.set_user_attr("directory", str(directory))
        trial.set_user_attr("corpus", str(self.corpus))
        trial.set_user_attr("process", f"{socket.gethostname()}:{os.getpid()}")
        try:
            result = fit(
                self.corpus,
                directory,
                model_overrides=model,
                train_overrides=train,
                preset=self.space.preset,
                device=self.device,
                threads=self.threads,
                callback=PruneCallback(trial),
                plots=False,
            )
        except TrainingError as e:  # the loss diverged: a failed trial, not a failed sweep
            trial.set_user_attr("error", str(e))
            raise
        trial.set_user_attr("best_val_loss", result.best_val_loss)
        trial.set_user_attr("best_step", result.best_step)
        trial.set_user_attr("steps", result.steps)
        trial.set_user_attr("stop_reason", result.stop_reason)
        if result.stop_reason == "interrupted":
            raise KeyboardInterrupt
        if result.stop_reason == PRUNED:
            raise optuna.TrialPruned(f"pruned at step {result.steps}")
        return result.best_val_loss


def run_trials(
    study: optuna.Study,
    objective: Objective,
    trials: int,
    callbacks: Iterable[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
) -> None:
    """Run `trials` trials of `study` in this process (other processes may be running
    theirs); a trial whose loss diverges fails, and the sweep goes on."""
    study.optimize(objective, n_trials=trials, catch=(TrainingError,), callbacks=callbacks)
