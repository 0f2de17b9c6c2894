"""The `charlm` argument parser, its flags derived from the config classes.

Model, training, sampling and service flags come from `ModelConfig`, `TrainConfig`,
`SampleConfig` and the service's `ServiceSettings` (`charlm/flags.py`), so their names,
help and defaults are declared once, there; `--help` shows every default. Every
subcommand that finds checkpoints takes `--checkpoints-dir`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import charlm
from charlm import download, names
from charlm.cli.sweep import SWEEP_HELP, add_sweep_arguments
from charlm.cli.tasks import add_corpus_make_arguments, add_lab_arguments
from charlm.flags import HelpFormatter, add_dataclass_flags, add_model_flags
from charlm.inference import SampleConfig
from charlm.inference.activations import KINDS as ACTIVATION_KINDS
from charlm.inference.defaults import PredictConfig, ScoreConfig, default_and_help
from charlm.model import CELLS, ModelConfig
from charlm.runtime import PRECISIONS
from charlm.train_config import SPLITS
from charlm.training import PRESETS, TrainConfig
from charlm.training.distributed import DEFAULT_TIMEOUT_S
from charlm.training.presets import LONG_BUDGET_MINUTES

__all__ = ["SERVICE_SETTINGS", "build_parser", "service_settings"]

SERVICE_SETTINGS = "charlm_service.settings"
_THREADS_HELP = (
    "CPU threads; by default one per core that other work is not using when the command "
    "starts (measured in BENCHMARKS.md: two threads are faster on a quiet 2-core machine, "
    "one is far faster when other work keeps the cores busy)"
)


def _preset_defaults(section: str, config: type) -> dict[str, str]:
    """'by preset: tiny 64, small 128, large 256' for each setting a preset decides; the
    config's own default for presets that leave it alone."""
    base = {f.name: f.default for f in fields(config)}
    out: dict[str, str] = {}
    for name in {k for p in PRESETS.values() for k in getattr(p, section)}:
        parts, seen = [], set()
        for p in PRESETS.values():
            value = getattr(p, section).get(name, base.get(name))
            extra = p.long_budget_model.get(name) if section == "model" else None
            long = f" ({extra} for --max-minutes >= {LONG_BUDGET_MINUTES:g})" if extra else ""
            parts.append(f"{p.name} {value}{long}")
            seen.add(f"{value}{long}")
        out[name] = seen.pop() if len(seen) == 1 else "by preset: " + ", ".join(parts)
    return out


def _text_arg(value: str) -> str:
    """TEXT arguments: '-' reads standard input."""
    return sys.stdin.read() if value == "-" else value


def _checkpoints_dir(p: argparse.ArgumentParser) -> None:
    """`--checkpoints-dir`, the same in every command that finds checkpoints by name."""
    p.add_argument(
        "--checkpoints-dir",
        type=Path,
        metavar="DIR",
        default=Path("checkpoints"),
        help="the directory that holds checkpoints, by name",
    )


def _common(p: argparse.ArgumentParser, *, checkpoint_arg: bool = True) -> None:
    if checkpoint_arg:
        p.add_argument("checkpoint", help="checkpoint directory, or a name under --checkpoints-dir")
        p.add_argument(
            "--device",
            default="cpu",
            help="cpu, cuda, cuda:N or auto (CUDA when present); a checkpoint trained on "
            "any device loads on any",
        )
    _checkpoints_dir(p)
    p.add_argument("--threads", type=int, metavar="N", help=f"{_THREADS_HELP} (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    """The `charlm` command line: one subcommand per entry of `_commands()`."""
    parser = argparse.ArgumentParser(
        prog="charlm",
        description="Character-level LSTM language models: train, inspect, generate, serve.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"charlm {charlm.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, about, add in _commands():
        add(sub.add_parser(name, help=about, description=about, formatter_class=HelpFormatter))
    return parser


def _commands() -> list[tuple[str, str, Callable[[argparse.ArgumentParser], object]]]:
    """(name, what it does, the function that adds its arguments), in `--help`'s order."""
    return [
        ("train", "train a model on a text corpus", _add_train),
        ("predict", "next-character distribution and greedy continuation", _add_predict),
        ("score", "per-step confidence of the model on a text", _add_score),
        (
            "cells",
            "inside the model: which units of a layer follow simple features of a text "
            "(inside quotes, position in the line, ...), and their activations",
            _add_cells,
        ),
        ("generate", "sample text from a model", _add_generate),
        ("eval", "mean loss of a model on a text file", _add_eval),
        ("info", "what a checkpoint holds: architecture, vocabulary, training", _add_info),
        ("serve", "serve the models in a checkpoints directory over HTTP", _add_serve),
        ("plot", "redraw a checkpoint's learning curves as a PNG", _add_plot),
        (
            "diagnose",
            "what a training run learned and what went wrong, in words, with what to try",
            _add_diagnose,
        ),
        (
            "watch",
            "run a training script of your own, unchanged, under charlm's watcher: what stops "
            "it learning, measured inside the loop",
            _add_watch,
        ),
        (
            "accuracy",
            "how often a model continues each prompt of an answer file with its answer, "
            "and the probability it gives the answers, by field",
            _add_accuracy,
        ),
        (
            "lab",
            "the recurrent-nets lab: a classic set-up that will not learn, run broken and "
            "fixed over several seeds, written up as markdown, CSV and PNG",
            add_lab_arguments,
        ),
        ("sweep", SWEEP_HELP, add_sweep_arguments),
        ("corpus", "download well-known corpora, or make task corpora", _add_corpus),
    ]


def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "corpus",
        help="UTF-8 text file, a directory written by `charlm corpus prepare`, or the name of "
        "a downloaded corpus (a text file over 64 MiB is prepared on the fly, into the cache)",
    )
    _common(p, checkpoint_arg=False)
    p.add_argument(
        "--name",
        help="model name: its checkpoint's directory under --checkpoints-dir and the name "
        f"it is served by; {names.RULE} (default: the corpus file's stem, made one)",
    )
    p.add_argument("--resume", action="store_true", help="continue the checkpoint's run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the run's plan (every setting, the runtime, what the time budget "
        "changed) as a settings file that --config reads back, and train nothing",
    )
    p.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train data-parallel in N processes on this machine, through torchrun "
        "(--batch-size is the global batch, shared out among them; for several machines "
        "run torchrun yourself: see docs/scaling.md)",
    )
    p.add_argument(
        "--dist-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help="with several processes: how long to wait for one that stops answering "
        "before the run ends with an error",
    )
    p.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="model and training defaults by name (default: by corpus size: "
        "tiny < 20k chars <= small < 300k chars <= large)",
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file of model and training settings (keys: the flags' names with "
        "underscores, and preset), such as a sweep's best.toml; flags given override it",
    )
    add_dataclass_flags(
        p.add_argument_group("model"),
        ModelConfig,
        skip={"vocab_size"},
        defaults=_preset_defaults("model", ModelConfig),
        choices={"cell": tuple(CELLS)},
    )
    add_dataclass_flags(
        p.add_argument_group("training"),
        TrainConfig,
        skip={"eval_max_chars", "log_interval"},
        defaults=_preset_defaults("train", TrainConfig),
        choices={
            "precision": PRECISIONS,
            "split": SPLITS,
            "signals": ("on", "off"),
        },
    )


def _add_predict(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("text", type=_text_arg, help="the text so far ('-' reads stdin)")
    for flag, name in (
        ("--top-k", "top_k"),
        ("--continue", "continuation_length"),
        ("--alternatives", "alternatives"),
    ):
        default, about = default_and_help(PredictConfig, name)
        p.add_argument(flag, dest=name, type=int, default=default, metavar="N", help=about)
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_score(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("text", type=_text_arg, help="text to score ('-' reads stdin)")
    default, about = default_and_help(ScoreConfig, "alternatives")
    p.add_argument("--alternatives", type=int, default=default, metavar="N", help=about)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a self-contained HTML report here"
    )


def _add_cells(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("text", type=_text_arg, help="text to read ('-' reads stdin)")
    p.add_argument(
        "--layer", type=int, default=-1, metavar="N", help="layer, from 0 (default: the last)"
    )
    p.add_argument(
        "--kind",
        default="cell",
        choices=list(ACTIVATION_KINDS),
        help="cell: tanh of the LSTM cell state; hidden: the layer's output; or a gate "
        "(a GRU or RNN has hidden only)",
    )
    p.add_argument(
        "--unit", dest="cells", type=int, action="append", default=[], metavar="N",
        help="also list this unit's activation after each character (repeatable)",
    )  # fmt: skip
    p.add_argument("--top", type=int, default=5, metavar="N", help="units listed per feature")
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_generate(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument(
        "--prompt", default="", type=_text_arg, help="text to continue ('-': stdin; default: none)"
    )
    add_dataclass_flags(p, SampleConfig)
    weights = p.add_mutually_exclusive_group()
    weights.add_argument(
        "--bf16",
        action="store_true",
        help="step with bfloat16 weights: faster for large models, probabilities within "
        "2e-2 of float32 (CPUs with AVX-512 only)",
    )
    weights.add_argument(
        "--int8",
        action="store_true",
        help="step with int8 weights: fastest for large models, probabilities within "
        "5e-2 of float32 (x86-64 CPUs)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of the text")


def _add_eval(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("corpus", help="UTF-8 text file")
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_info(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_serve(p: argparse.ArgumentParser) -> None:
    settings_cls = service_settings()
    add_model_flags(p, settings_cls)


def _add_plot(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument(
        "--out", type=Path, metavar="FILE", help="PNG file (default: learning_curves.png beside it)"
    )


def _add_diagnose(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint", nargs="?", help="checkpoint directory, or a name under --checkpoints-dir"
    )
    _checkpoints_dir(p)
    p.add_argument(
        "--log",
        type=Path,
        metavar="FILE",
        help="read this log of another training loop instead: columns with a header (CSV, "
        "TSV, a Keras or Lightning CSVLogger's), JSON Lines (charlm.watch's too), or printed "
        "lines with a loss in them (a loop's stdout); see `charlm.diagnostics.logs`",
    )
    p.add_argument(
        "--corpus",
        metavar="FILE",
        help="the text the run trained on, for the reference levels (a checkpoint keeps "
        "its own; one written before they were kept needs this); with --log, it says the "
        "loss is a per-character cross-entropy",
    )
    p.add_argument(
        "--vocab-size",
        type=int,
        metavar="N",
        help="with --log: the loss is a cross-entropy over N classes (characters), so that "
        "a softmax of bounded values (an LSTM's output taken as logits) can be named",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_watch(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log",
        type=Path,
        metavar="FILE",
        help="also write every step and finding there as JSON Lines (charlm diagnose --log "
        "reads it)",
    )
    p.add_argument("script", help="the Python script, run as `python SCRIPT ARGS...` would")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")


def _add_accuracy(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument(
        "answers",
        metavar="FILE",
        help="answer file: prompt<TAB>answer[<TAB>field=value]... per line, escaped "
        "(`charlm corpus make` writes one)",
    )
    p.add_argument(
        "--by",
        nargs="+",
        action="extend",
        metavar="FIELD",
        help="break the accuracy down by these fields (default: every field)",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def _add_corpus(p: argparse.ArgumentParser) -> None:
    csub = p.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    add_corpus_make_arguments(csub)
    d = csub.add_parser(
        "download",
        help="fetch a corpus into the cache, checking its sha256",
        formatter_class=HelpFormatter,
    )
    d.add_argument("name", help=f"one of: {', '.join(sorted(download.KNOWN_CORPORA))}")
    d.add_argument("--url", help="fetch from this address instead (mirror or file:// URL)")
    d.add_argument(
        "--cache-dir", type=Path, metavar="DIR", help="default: $CHARLM_CACHE or ~/.cache/charlm"
    )
    csub.add_parser(
        "list", help="known corpora and whether they are cached", formatter_class=HelpFormatter
    )
    pr = csub.add_parser(
        "prepare",
        help="write a corpus's character ids once (memory-mapped by `charlm train DIR`, so "
        "training memory does not grow with the corpus)",
        formatter_class=HelpFormatter,
    )
    pr.add_argument("corpus", help="UTF-8 text file (or the name of a downloaded corpus)")
    pr.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where to write ids.npy and corpus.json (default: the corpus path with the "
        "suffix .prepared)",
    )


def service_settings() -> Any:
    """The service's settings class (imported by name: the service depends on charlm,
    never the other way round)."""
    return importlib.import_module(SERVICE_SETTINGS).ServiceSettings
