"""The `charlm` command line: flags in, configs built, one library call, results printed.

The model, training, sampling and service flags are derived from the config classes
(`charlm/flags.py`), so their names, help and defaults are declared once, there. Every
subcommand that finds checkpoints takes `--checkpoints-dir`. `--json` prints the
library's result objects as they are (the same JSON the HTTP service answers).

Exit codes: 0 success, 2 a `CharLMError` (printed as one line on stderr, no traceback)
or a usage error, 130 training interrupted (a checkpoint is saved first).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel

import charlm
from charlm import checkpoint, download, render
from charlm.data import read_corpus, split_text
from charlm.errors import CharLMError, ConfigError, InputError
from charlm.flags import HelpFormatter, add_dataclass_flags, add_model_flags, given
from charlm.inference import Predictor, SampleConfig
from charlm.metrics import METRICS_FILE
from charlm.model import ModelConfig
from charlm.plots import plot_metrics
from charlm.progress import ProgressBar
from charlm.report import score_report
from charlm.runtime import Runtime
from charlm.training import PRESETS, TrainConfig, fit
from charlm.training.presets import LONG_BUDGET_MINUTES

__all__ = ["build_parser", "main"]

_SERVICE_SETTINGS = "charlm_service.settings"
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


def _common(p: argparse.ArgumentParser, *, checkpoint_arg: bool = True) -> None:
    if checkpoint_arg:
        p.add_argument("checkpoint", help="checkpoint directory, or a name under --checkpoints-dir")
    p.add_argument(
        "--checkpoints-dir",
        type=Path,
        metavar="DIR",
        default=Path("checkpoints"),
        help="the directory that holds checkpoints, by name",
    )
    p.add_argument("--threads", type=int, metavar="N", help=f"{_THREADS_HELP} (default: auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charlm",
        description="Character-level LSTM language models: train, inspect, generate, serve.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"charlm {charlm.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)

    t = command("train", "train a model on a text corpus")
    t.add_argument("corpus", help="UTF-8 text file (or the name of a downloaded corpus)")
    _common(t, checkpoint_arg=False)
    t.add_argument("--name", help="checkpoint name (default: the corpus file's stem)")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint's run")
    t.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    t.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="model and training defaults by name (default: by corpus size: "
        "tiny < 20k chars <= small < 300k chars <= large)",
    )
    add_dataclass_flags(
        t.add_argument_group("model"),
        ModelConfig,
        skip={"vocab_size"},
        defaults=_preset_defaults("model", ModelConfig),
    )
    add_dataclass_flags(
        t.add_argument_group("training"),
        TrainConfig,
        skip={"eval_max_chars", "log_interval"},
        defaults=_preset_defaults("train", TrainConfig),
        choices={"precision": ("auto", "fp32", "bf16"), "split": ("interleaved", "tail")},
    )

    p = command("predict", "next-character distribution and greedy continuation")
    _common(p)
    p.add_argument("text", type=_text_arg, help="the text so far ('-' reads stdin)")
    p.add_argument("--top-k", type=int, default=5, help="how many characters to list (0: all)")
    p.add_argument(
        "--continue", dest="continuation_length", type=int, default=0,
        help="greedy continuation length",
    )  # fmt: skip
    p.add_argument("--alternatives", type=int, default=3, help="runners-up per continued step")
    p.add_argument("--json", action="store_true", help="print JSON")

    s = command("score", "per-step confidence of the model on a text")
    _common(s)
    s.add_argument("text", type=_text_arg, help="text to score ('-' reads stdin)")
    s.add_argument("--alternatives", type=int, default=3, help="runner-up characters per step")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--html", type=Path, help="also write a self-contained HTML report here")

    g = command("generate", "sample text from a model")
    _common(g)
    g.add_argument(
        "--prompt", default="", type=_text_arg, help="text to continue ('-': stdin; default: none)"
    )
    add_dataclass_flags(g, SampleConfig)
    g.add_argument(
        "--bf16",
        action="store_true",
        help="step with bfloat16 weights: faster for large models, probabilities within "
        "2e-2 of float32 (CPUs with native bfloat16 only)",
    )
    g.add_argument("--json", action="store_true", help="print JSON instead of the text")

    e = command("eval", "mean loss of a model on a text file")
    _common(e)
    e.add_argument("corpus", help="UTF-8 text file")
    e.add_argument("--json", action="store_true", help="print JSON")

    i = command("info", "what a checkpoint holds: architecture, vocabulary, training")
    _common(i)
    i.add_argument("--json", action="store_true", help="print JSON")

    v = command("serve", "serve the models in a checkpoints directory over HTTP")
    settings_cls = _service_settings()
    add_model_flags(v, settings_cls)

    pl = command("plot", "redraw a checkpoint's learning curves as a PNG")
    _common(pl)
    pl.add_argument("--out", type=Path, help="PNG file (default: learning_curves.png beside it)")

    c = command("corpus", "download well-known corpora")
    csub = c.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    d = csub.add_parser("download", help="fetch a corpus into the cache, checking its sha256")
    d.add_argument("name", help=f"one of: {', '.join(sorted(download.KNOWN_CORPORA))}")
    d.add_argument("--url", help="fetch from this address instead (mirror or file:// URL)")
    d.add_argument("--cache-dir", type=Path, help="default: $CHARLM_CACHE or ~/.cache/charlm")
    csub.add_parser("list", help="known corpora and whether they are cached")
    return parser


def _service_settings() -> Any:
    """The service's settings class (imported by name: the service depends on charlm,
    never the other way round)."""
    return importlib.import_module(_SERVICE_SETTINGS).ServiceSettings


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="charlm: %(message)s")
    try:
        return _COMMANDS[args.command](args)
    except CharLMError as e:
        print(f"charlm: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `charlm ... | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _resolve_corpus(arg: str) -> Path:
    path = Path(arg)
    if not path.exists() and arg in download.KNOWN_CORPORA:
        cached = download.cached_path(arg)
        if cached.is_file():
            return cached
        raise InputError(f"corpus {arg}: not downloaded yet; run `charlm corpus download {arg}`")
    return path


def cmd_train(args: argparse.Namespace) -> int:
    corpus = _resolve_corpus(args.corpus)
    name = args.name or corpus.stem
    if not name or Path(name).name != name or name in (".", ".."):
        raise InputError(
            f"--name {name!r} must be a plain name; use --checkpoints-dir for the location"
        )
    directory = args.checkpoints_dir / name
    bar = None if args.quiet else ProgressBar()
    result = fit(
        corpus,
        directory,
        model_overrides=given(args, ("embedding_dim", "hidden_size", "num_layers", "dropout")),
        train_overrides=given(args, [f.name for f in fields(TrainConfig)]),
        preset=args.preset,
        resume=args.resume,
        overwrite=args.overwrite,
        device=args.device,
        threads=args.threads,
        callback=bar,
    )
    if bar is not None:
        bar.close()
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
        again = f"charlm train {args.corpus} --name {name}"
        if args.checkpoints_dir != Path("checkpoints"):
            again += f" --checkpoints-dir {args.checkpoints_dir}"
        print(f"continue with: {again} --resume")
        return 130
    _print_confidence(directory, corpus)
    return 0


def _print_confidence(directory: Path, corpus: Path) -> None:
    """Per-step confidence of the best weights on (up to 2,000 chars of) validation text."""
    cfg = checkpoint.load(directory).train_config
    predictor = Predictor.from_checkpoint(directory)
    sample = split_text(read_corpus(corpus), cfg["val_fraction"], cfg["split"]).val_blocks[0]
    if len(sample) < 2:
        return
    result = predictor.score(sample[:2000], alternatives=0)
    print("per-step confidence: " + render.score_summary(result))
    cells = [f"{render.show_char(s.char)} {s.prob:.4f}" for s in result.steps[:26]]
    print("\n".join(render.wrap(cells)))


def _predictor(args: argparse.Namespace, **kwargs: Any) -> Predictor:
    where = checkpoint.resolve(args.checkpoint, args.checkpoints_dir)
    Runtime.choose("cpu", threads=args.threads)
    return Predictor.from_checkpoint(where, **kwargs)


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


def cmd_generate(args: argparse.Namespace) -> int:
    config = SampleConfig(**given(args, [f.name for f in fields(SampleConfig)]))
    predictor = _predictor(args, bf16_steps=args.bf16)
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


def cmd_serve(args: argparse.Namespace) -> int:
    """Run uvicorn on the service's app factory; the settings travel to every worker
    process as CHARLM_* environment variables."""
    import uvicorn

    module = importlib.import_module(_SERVICE_SETTINGS)
    settings = module.settings_from(given(args, _service_settings().model_fields))
    os.environ.update(module.to_environ(settings))
    if not settings.checkpoints_dir.is_dir():
        print(
            f"charlm: warning: {settings.checkpoints_dir} does not exist yet; no models to serve",
            file=sys.stderr,
        )
    try:
        uvicorn.run(
            "charlm_service.app:create_app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            timeout_graceful_shutdown=30,
        )
    except OSError as e:  # the port is taken, the address is not ours, ...
        raise ConfigError(
            f"cannot serve on {settings.host}:{settings.port}: {e.strerror or e}"
        ) from e
    return 0


def cmd_corpus(args: argparse.Namespace) -> int:
    if args.corpus_command == "list":
        for name, source in sorted(download.KNOWN_CORPORA.items()):
            path = download.cached_path(name)
            state = f"cached at {path}" if path.is_file() else "not downloaded"
            print(f"{name}: {source.description}; {state}")
        return 0
    path = download.download(args.name, directory=args.cache_dir, url=args.url)
    print(path)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "train": cmd_train,
    "predict": cmd_predict,
    "score": cmd_score,
    "generate": cmd_generate,
    "eval": cmd_eval,
    "info": cmd_info,
    "corpus": cmd_corpus,
    "serve": cmd_serve,
    "plot": cmd_plot,
}
