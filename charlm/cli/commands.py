"""The `charlm` subcommands: each builds configs from its flags, makes one library call
and prints the result (`--json`: the library's result objects as they are, the same JSON
the HTTP service answers)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from charlm import checkpoint, download, render
from charlm.cli.naming import default_name, given_name
from charlm.cli.parser import SERVICE_SETTINGS, service_settings
from charlm.cli.sweep import cmd_sweep
from charlm.cli.tasks import cmd_accuracy, cmd_corpus_make, cmd_lab
from charlm.data import IdSplit, read_corpus
from charlm.diagnostics.diagnosis import diagnose_checkpoint, diagnose_log
from charlm.download import resolve_corpus
from charlm.errors import ConfigError, InputError
from charlm.flags import given
from charlm.html_report import score_report
from charlm.inference import Predictor, SampleConfig
from charlm.model import ModelConfig
from charlm.plots import plot_metrics
from charlm.prepared import IDS_FILE, load_corpus, prepare
from charlm.progress import ProgressBar
from charlm.runlog import METRICS_FILE
from charlm.runtime import Runtime
from charlm.training import RunPlan, TrainConfig, fit, plan_run
from charlm.training.distributed import Cluster, launched
from charlm.training.launch import launch, without_nproc
from charlm.training.settings_file import Settings, read_settings

__all__ = ["COMMANDS"]


def cmd_train(args: argparse.Namespace) -> int:
    if args.nproc is not None and args.nproc < 1:
        raise InputError(f"--nproc must be at least 1, got {args.nproc}")
    if args.name is not None:
        path = "/" in args.name or os.sep in args.name
        where = "--checkpoints-dir for the location" if path else ""
        given_name("--name", args.name, where=where)  # before anything starts or is written
    if args.dry_run:
        print(_plan(args).settings_text(), end="")
        return 0
    if (args.nproc or 1) > 1 and not launched():
        _plan(args)  # what the ranks would refuse, refused before they start
        return launch(args.nproc, without_nproc(args.argv))
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:  # rank 0 speaks for the run
        args.quiet = True
        logging.getLogger().setLevel(logging.ERROR)
    corpus, directory = _run_place(args, say=rank == 0)
    bar = None if args.quiet else ProgressBar()
    result = fit(
        corpus, directory, **_run_choices(args), callback=bar, dist_timeout_s=args.dist_timeout
    )
    if bar is not None:
        bar.close()
    if rank != 0:
        return 130 if result.stop_reason == "interrupted" else 0
    where = "validation" if result.val_held_out else "training (too small to hold out)"
    print(
        f"trained {result.steps} steps in {result.elapsed_s:.1f} s "
        f"({result.chars_per_s:,.0f} chars/s); stopped: {result.stop_reason}"
    )
    if result.saved_step == 0:
        print("no checkpoint was written (stopped before the first save)")
        return 130 if result.stop_reason == "interrupted" else 0
    print(
        f"best {where} loss {render.num(result.best_val_loss)} nats/char "
        f"at step {result.best_step}; checkpoint: {directory}"
    )
    if result.stop_reason == "interrupted":
        again = f"charlm train {shlex.quote(args.corpus)} --name {directory.name}"
        if args.checkpoints_dir != Path("checkpoints"):
            again += f" --checkpoints-dir {shlex.quote(str(args.checkpoints_dir))}"
        print(f"continue with: {again} --resume")
        return 130
    _print_confidence(directory, corpus)
    return 0


def _run_place(args: argparse.Namespace, *, say: bool) -> tuple[Path, Path]:
    """The corpus file and checkpoint directory of `charlm train`'s arguments."""
    corpus = resolve_corpus(args.corpus)
    name = args.name if args.name is not None else default_name(corpus, say=say)
    return corpus, args.checkpoints_dir / name


def _run_choices(args: argparse.Namespace) -> dict[str, Any]:
    """`charlm train`'s arguments as `fit`'s and `plan_run`'s: --config's settings
    first, the flags given over them."""
    file = read_settings(args.config) if args.config is not None else Settings({}, {})
    return {
        "model_overrides": {**file.model, **given(args, [f.name for f in fields(ModelConfig)])},
        "train_overrides": {**file.train, **given(args, [f.name for f in fields(TrainConfig)])},
        "preset": args.preset or file.preset,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "device": args.device,
        "threads": args.threads,
    }


def _plan(args: argparse.Namespace) -> RunPlan:
    """The plan of `charlm train`'s arguments, as each of its `--nproc` processes would
    train it."""
    corpus, directory = _run_place(args, say=False)
    processes = args.nproc or 1
    cluster = Cluster(world=processes, local_world=processes)
    return plan_run(corpus, directory, **_run_choices(args), cluster=cluster)


def _print_confidence(directory: Path, corpus: Path) -> None:
    """Per-step confidence of the best weights on (up to 2,000 chars of) validation text."""
    cfg = checkpoint.load(directory).train_config
    predictor = Predictor.from_checkpoint(directory)
    data = load_corpus(corpus)
    block = IdSplit.of_ids(data.ids, cfg.val_fraction, cfg.split).val_blocks[0]
    sample = data.vocab.decode(np.asarray(block[:2000]).tolist())
    if len(sample) < 2:
        return
    result = predictor.score(sample[:2000], alternatives=0)
    print("per-step confidence: " + render.score_summary(result))
    cells = [f"{render.show_char(s.char)} {s.prob:.4f}" for s in result.steps[:26]]
    print("\n".join(render.wrap(cells)))


def _predictor(args: argparse.Namespace, **kwargs: Any) -> Predictor:
    where = checkpoint.resolve(args.checkpoint, args.checkpoints_dir)
    Runtime.choose(args.device, threads=args.threads)
    return Predictor.from_checkpoint(where, args.device, **kwargs)


def _print_json(result: BaseModel) -> None:
    print(result.model_dump_json(indent=2))


def cmd_predict(args: argparse.Namespace) -> int:
    result = _predictor(args).predict(
        args.text, args.top_k, args.continuation_length, args.alternatives
    )
    if args.json:
        _print_json(result)
    else:
        print(render.predict_text(args.text, result))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    result = _predictor(args).score(args.text, alternatives=args.alternatives)
    if args.html is not None:
        try:
            args.html.write_text(score_report(result), encoding="utf-8")
        except OSError as e:
            raise InputError(f"--html {args.html}: cannot write it ({e.strerror or e})") from e
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        _print_json(result)
    else:
        print(render.score_table(result))
    return 0


def cmd_cells(args: argparse.Namespace) -> int:
    predictor = _predictor(args)
    result = predictor.activations(
        args.text, layer=args.layer, kind=args.kind, cells=args.cells, top=args.top
    )
    if args.json:
        _print_json(result)
    else:
        print(render.activations_text(result, predictor.model.config.num_layers))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    config = SampleConfig(**given(args, [f.name for f in fields(SampleConfig)]))
    weights = "bf16" if args.bf16 else "int8" if args.int8 else "fp32"
    predictor = _predictor(args, step_weights=weights)
    if args.json:
        _print_json(predictor.generate(args.prompt, config))
        return 0
    chars = predictor.sample(args.prompt, config)  # checks the prompt before printing it
    sys.stdout.write(args.prompt)
    for char in chars:
        sys.stdout.write(char)
    sys.stdout.write("\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    result = _predictor(args).evaluate(read_corpus(args.corpus), what=f"corpus {args.corpus}")
    if args.json:
        _print_json(result)
    else:
        print(render.eval_text(args.corpus, result))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    card = _predictor(args).card
    if args.json:
        _print_json(card)
    else:
        print(render.card_text(card))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    directory = checkpoint.resolve(args.checkpoint, args.checkpoints_dir)
    if not (directory / METRICS_FILE).is_file():
        raise InputError(f"{directory}: no {METRICS_FILE} to plot")
    print(plot_metrics(directory, args.out))
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    """A run's diagnosis; exit status 0 whatever it finds (a finding is not an error)."""
    if (args.checkpoint is None) == (args.log is None):
        raise InputError("give a checkpoint or --log FILE (one of the two)")
    corpus = read_corpus(resolve_corpus(args.corpus)) if args.corpus else None
    if args.log is not None:
        diagnosis = diagnose_log(args.log, corpus, args.vocab_size)
    else:
        if args.vocab_size is not None:
            raise InputError("--vocab-size goes with --log (a checkpoint knows its vocabulary)")
        directory = checkpoint.resolve(args.checkpoint, args.checkpoints_dir)
        diagnosis = diagnose_checkpoint(directory, corpus)
    if args.json:
        print(json.dumps(diagnosis.to_dict(), indent=2))
    else:
        print(diagnosis.render())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run uvicorn on the service's app factory (charlm_service.supervisor); the settings
    travel to every worker process as CHARLM_* environment variables."""
    module = importlib.import_module(SERVICE_SETTINGS)
    settings = module.settings_from(given(args, service_settings().model_fields))
    os.environ.update(module.to_environ(settings))
    if not settings.checkpoints_dir.is_dir():
        print(
            f"charlm: warning: {settings.checkpoints_dir} does not exist yet; no models to serve",
            file=sys.stderr,
        )
    shared = None
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # The workers' metrics meet here, so that /metrics counts all of them.
        shared = tempfile.TemporaryDirectory(prefix="charlm-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared.name
    try:
        importlib.import_module("charlm_service.supervisor").serve(settings)
    except OSError as e:  # the port is taken, the address is not ours, ...
        raise ConfigError(
            f"cannot serve on {settings.host}:{settings.port}: {e.strerror or e}"
        ) from e
    finally:
        if shared is not None:
            shared.cleanup()
    return 0


def cmd_corpus(args: argparse.Namespace) -> int:
    if args.corpus_command == "make":
        return cmd_corpus_make(args)
    if args.corpus_command == "prepare":
        return _prepare(args)
    if args.corpus_command == "list":
        for name, source in sorted(download.KNOWN_CORPORA.items()):
            path = download.cached_path(name)
            state = f"cached at {path}" if path.is_file() else "not downloaded"
            print(f"{name}: {source.description}; {state}")
        return 0
    path = download.download(args.name, directory=args.cache_dir, url=args.url)
    print(path)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    source = resolve_corpus(args.corpus)
    out = args.out or source.with_suffix(".prepared")
    t0 = time.perf_counter()
    corpus = prepare(source, out)
    size = (out / IDS_FILE).stat().st_size
    print(
        f"prepared {corpus.chars:,} characters ({len(corpus.vocab)} symbols, "
        f"{corpus.ids.dtype}) in {time.perf_counter() - t0:.1f} s: {out} "
        f"({size / 2**20:,.1f} MiB); train with: charlm train {shlex.quote(str(out))}"
    )
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """The script's own exit status; the watcher's report goes to standard error."""
    from charlm.watcher.script import run_script

    return run_script(args.script, args.args, log=args.log)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train,
    "predict": cmd_predict,
    "score": cmd_score,
    "cells": cmd_cells,
    "generate": cmd_generate,
    "eval": cmd_eval,
    "accuracy": cmd_accuracy,
    "lab": cmd_lab,
    "info": cmd_info,
    "corpus": cmd_corpus,
    "serve": cmd_serve,
    "plot": cmd_plot,
    "diagnose": cmd_diagnose,
    "watch": cmd_watch,
    "sweep": cmd_sweep,
}
