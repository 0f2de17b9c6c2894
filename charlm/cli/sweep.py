"""`charlm sweep`: its flags, and the lines it prints as trials finish.

The flags become a `Space`, a storage and a study (`charlm.sweep`); this process runs
`--trials` trials of that study, printing one line per finished trial, then writes the
report from the whole study. Optuna is imported only when a sweep runs, so that the
other commands start without it.
"""

from __future__ import annotations

import argparse
import logging
import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charlm.cli.naming import default_name, given_name
from charlm.download import resolve_corpus
from charlm.errors import ConfigError
from charlm.prepared import load_corpus

if TYPE_CHECKING:
    import optuna

__all__ = ["SWEEP_HELP", "add_sweep_arguments", "cmd_sweep"]

SWEEP_HELP = (
    "search training settings with Optuna: many short runs, pruned when they fall behind; "
    "writes the best settings as a file for `charlm train --config`"
)


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "corpus",
        help="UTF-8 text file, a directory written by `charlm corpus prepare`, or the name "
        "of a downloaded corpus",
    )
    p.add_argument(
        "--trials",
        type=int,
        metavar="N",
        required=True,
        default=argparse.SUPPRESS,
        help="trials this process runs (several processes on one study each run theirs)",
    )
    p.add_argument(
        "--minutes-per-trial",
        type=float,
        metavar="X",
        required=True,
        default=argparse.SUPPRESS,
        help="wall-clock budget of each trial's training run (its --max-minutes)",
    )
    p.add_argument(
        "--space",
        type=Path,
        metavar="FILE",
        help="TOML file of the settings to search (see README, Sweeps; default: lr, "
        "hidden_size, dropout, seq_len, batch_size, weight_decay)",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="database holding the study, shared by every process that joins it, e.g. "
        "postgresql://user:password@host/db (default: sqlite:///OUT/sweep.db)",
    )
    p.add_argument(
        "--study",
        metavar="NAME",
        help="study name (default: the corpus file's stem as a model name, like `charlm "
        "train`'s default; without --out it names a directory, so it follows that rule)",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="trial checkpoints and the report (default: checkpoints/sweeps/STUDY)",
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="seed of this process's sampler (default: a random one, so that processes "
        "joining one study propose different settings)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads per trial (default: auto)")


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {args.trials}")
    minutes = args.minutes_per_trial
    if not (math.isfinite(minutes) and minutes > 0):
        raise ConfigError(f"--minutes-per-trial must be a number above 0, got {minutes:g}")
    if args.storage is not None:  # refused before anything is read or written
        from charlm.sweep import check_storage

        check_storage(args.storage)
    corpus = resolve_corpus(args.corpus)
    if args.study is not None and not args.study.strip():
        raise ConfigError("--study must not be empty")
    if args.study is not None and args.out is None:  # it names the sweep's directory
        what = "a directory name for checkpoints/sweeps/STUDY"
        given_name("--study", args.study, what=what, where="--out")
    load_corpus(corpus)  # a bad corpus fails here, not in every trial
    name = args.study
    if name is None:
        name = default_name(corpus, say=True, label="study name")

    import optuna

    from charlm import sweep

    space = sweep.read_space(args.space) if args.space is not None else sweep.DEFAULT_SPACE
    out = args.out if args.out is not None else Path("checkpoints") / "sweeps" / name
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot create it ({e.strerror or e})") from e
    url = args.storage if args.storage is not None else sweep.default_storage(out)
    # Optuna's own messages (a failed trial's reason) go through charlm's one handler.
    optuna.logging.set_verbosity(logging.WARNING)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    study = sweep.open_study(sweep.open_storage(url), name, seed=args.seed)
    so_far = len(study.get_trials(deepcopy=False))
    print(
        f"study {name} in {sweep.shown_url(url)}: {_count(so_far, 'trial')} so far; "
        f"running {args.trials} of {minutes:g} minute{'' if minutes == 1 else 's'}; "
        f"trials in {out}"
    )
    objective = sweep.Objective(
        corpus, out, space, minutes, device=args.device, threads=args.threads
    )
    interrupted = False
    try:
        sweep.run_trials(study, objective, args.trials, callbacks=[_print_trial])
    except KeyboardInterrupt:
        interrupted = True
    report = sweep.write_report(study, out)
    print(summary_line(study))
    print("wrote " + ", ".join(str(p) for p in report.paths()))
    if report.best is not None:
        again = f"charlm train {shlex.quote(args.corpus)} --config {shlex.quote(str(report.best))}"
        print(f"train with them: {again}")
    return 130 if interrupted else 0


def _print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    print(trial_line(trial), flush=True)


def trial_line(trial: optuna.trial.FrozenTrial) -> str:
    """'trial 3 complete: best val loss 2.1234 at step 120 of 140; lr 0.00312, ...'"""
    a = trial.user_attrs
    settings = ", ".join(f"{k} {_show(v)}" for k, v in trial.params.items())
    state = trial.state.name.lower()
    loss = a.get("best_val_loss")
    if loss is None:
        what = a.get("error", "no result")
    elif trial.state.name == "PRUNED":
        state += f" at step {a.get('steps')}"
        what = f"best val loss {loss:.4f} at step {a.get('best_step')}"
    else:
        what = f"best val loss {loss:.4f} at step {a.get('best_step')} of {a.get('steps')}"
    return f"trial {trial.number} {state}: {what}; {settings}"


def summary_line(study: optuna.Study) -> str:
    from charlm.sweep import best_trial

    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    states = ", ".join(f"{n} {s}" for s, n in counts.items())
    best = best_trial(trials)
    line = f"study {study.study_name}: {_count(len(trials), 'trial')} ({states})"
    if best is not None:
        line += f"; best: trial {best.number}, val loss {best.value:.4f}"
    return line


def _show(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
