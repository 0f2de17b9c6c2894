"""The `charlm` command line: flags in, configs built, one library call, results printed.

Exit codes: 0 success, 2 a `CharLMError` (printed as one line on stderr, no traceback)
or a usage error, 130 training interrupted (a checkpoint is saved first).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from charlm import checkpoint, download, render
from charlm.data import read_corpus, split_text
from charlm.errors import CharLMError, InputError
from charlm.fit import fit
from charlm.inference import Predictor, SampleConfig
from charlm.metrics import METRICS_FILE
from charlm.plots import plot_metrics
from charlm.presets import PRESETS
from charlm.progress import ProgressBar
from charlm.report import score_report

__all__ = ["main"]

_MODEL_FLAGS = ("embedding_dim", "hidden_size", "num_layers", "dropout")
_TRAIN_FLAGS = (
    "batch_size",
    "seq_len",
    "lr",
    "min_lr_ratio",
    "warmup_steps",
    "weight_decay",
    "clip",
    "max_steps",
    "max_minutes",
    "eval_interval",
    "target_loss",
    "patience",
    "val_fraction",
    "split",
    "reset_prob",
    "seed",
    "precision",
)


def _add_checkpoint_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint directory, or a name under --checkpoints-dir")
    p.add_argument(
        "--checkpoints-dir",
        default="checkpoints",
        help="where checkpoint names are looked up (default: ./checkpoints)",
    )


def _text_arg(value: str) -> str:
    """TEXT arguments: '-' reads standard input."""
    return sys.stdin.read() if value == "-" else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="charlm",
        description="Character-level LSTM language models: train, inspect, generate.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model on a text corpus")
    t.add_argument("corpus", help="UTF-8 text file (or the name of a downloaded corpus)")
    t.add_argument("--name", help="checkpoint name (default: the corpus file's stem)")
    t.add_argument("--out-dir", default="checkpoints", help="parent directory of checkpoints")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint's run")
    t.add_argument("--overwrite", action="store_true", help="replace an existing checkpoint")
    t.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="model and training defaults by name; by default chosen from the corpus size "
        "(tiny < 20k chars <= small < 300k chars <= large)",
    )
    m = t.add_argument_group("model (defaults depend on the corpus size)")
    m.add_argument("--embedding-dim", type=int, help="character embedding size")
    m.add_argument("--hidden-size", type=int, help="LSTM units per layer")
    m.add_argument("--num-layers", type=int, help="stacked LSTM layers")
    m.add_argument("--dropout", type=float, help="dropout between layers and before the head")
    o = t.add_argument_group("training (defaults depend on the corpus size)")
    o.add_argument("--batch-size", type=int, help="parallel streams per step")
    o.add_argument("--seq-len", type=int, help="truncated-BPTT window, in characters")
    o.add_argument("--lr", type=float, help="peak learning rate (Adam)")
    o.add_argument("--min-lr-ratio", type=float, help="final learning rate as a fraction of --lr")
    o.add_argument("--warmup-steps", type=int, help="steps of linear learning-rate warm-up")
    o.add_argument("--weight-decay", type=float, help="decoupled weight decay (AdamW)")
    o.add_argument("--clip", type=float, help="gradient-norm clipping threshold")
    o.add_argument("--max-steps", type=int, help="optimiser steps (also sets the schedule)")
    o.add_argument("--max-minutes", type=float, help="wall-clock budget for this invocation")
    o.add_argument("--eval-interval", type=int, help="steps between evaluations and saves")
    o.add_argument("--target-loss", type=float, help="stop once validation loss is this low")
    o.add_argument("--patience", type=int, help="stop after this many evaluations without gain")
    o.add_argument("--val-fraction", type=float, help="share of the corpus held out")
    o.add_argument(
        "--split", choices=("interleaved", "tail"), help="validation split layout (see README)"
    )
    o.add_argument("--reset-prob", type=float, help="chance a stream's state is zeroed per window")
    o.add_argument("--seed", type=int, help="random seed (same seed, same run on a CPU)")
    o.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        help="bf16 autocast, fp32, or auto (bf16 for hidden size >= 256 where native)",
    )

    p = sub.add_parser("predict", help="next-character distribution and greedy continuation")
    _add_checkpoint_args(p)
    p.add_argument("text", type=_text_arg, help="the text so far ('-' reads stdin)")
    p.add_argument("--top-k", type=int, default=5, help="how many characters to list (0: all)")
    p.add_argument(
        "--continue", dest="length", type=int, default=0, help="greedy continuation length"
    )
    p.add_argument("--json", action="store_true", help="print JSON")

    s = sub.add_parser("score", help="per-step confidence of the model on a text")
    _add_checkpoint_args(s)
    s.add_argument("text", type=_text_arg, help="text to score ('-' reads stdin)")
    s.add_argument("--alternatives", type=int, default=3, help="runner-up characters per step")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--html", type=Path, help="also write a self-contained HTML report here")

    g = sub.add_parser("generate", help="sample text from a model")
    _add_checkpoint_args(g)
    g.add_argument("--prompt", default="", type=_text_arg, help="text to continue")
    g.add_argument("--length", type=int, default=200, help="characters to generate")
    g.add_argument("--temperature", type=float, default=1.0, help="0 means greedy")
    g.add_argument("--top-k", type=int, default=0, help="sample from the k likeliest (0: all)")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass")
    g.add_argument("--seed", type=int, help="same seed, same text (default: random)")
    g.add_argument(
        "--bf16",
        action="store_true",
        help="step with bfloat16 weights: faster for large models, probabilities within "
        "2e-2 of float32 (CPUs with native bfloat16 only)",
    )

    e = sub.add_parser("eval", help="mean loss of a model on a text file")
    _add_checkpoint_args(e)
    e.add_argument("corpus", help="UTF-8 text file")
    e.add_argument("--json", action="store_true", help="print JSON")

    v = sub.add_parser("serve", help="serve the models in a checkpoints directory over HTTP")
    v.add_argument("--checkpoints", default="checkpoints", help="directory of checkpoints")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on")
    v.add_argument("--port", type=int, default=8000, help="port to listen on")
    v.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    v.add_argument("--max-text-chars", type=int, help="longest text or prompt (default 20000)")
    v.add_argument("--max-continuation", type=int, help="most /predict continuation chars")
    v.add_argument("--max-generate-length", type=int, help="most /generate chars (10000)")
    v.add_argument("--max-alternatives", type=int, help="most runner-ups per step (10)")
    v.add_argument("--max-pending", type=int, help="requests in progress before 503 (64)")
    v.add_argument("--max-batch", type=int, help="most /predict calls per batched pass (64)")
    v.add_argument("--batch-wait-ms", type=float, help="how long a batch waits for more calls (2)")
    v.add_argument("--log-level", default="info", help="uvicorn log level")

    pl = sub.add_parser("plot", help="redraw a checkpoint's learning curves as a PNG")
    _add_checkpoint_args(pl)
    pl.add_argument("--out", type=Path, help="PNG file (default: learning_curves.png beside it)")

    c = sub.add_parser("corpus", help="download well-known corpora")
    csub = c.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    d = csub.add_parser("download", help="fetch a corpus into the cache, checking its sha256")
    d.add_argument("name", help=f"one of: {', '.join(sorted(download.KNOWN_CORPORA))}")
    d.add_argument("--url", help="fetch from this address instead (mirror or file:// URL)")
    d.add_argument("--cache-dir", type=Path, help="default: $CHARLM_CACHE or ~/.cache/charlm")
    csub.add_parser("list", help="known corpora and whether they are cached")
    return parser


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


def _overrides(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


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
        raise InputError(f"--name {name!r} must be a plain name; use --out-dir for the location")
    directory = Path(args.out_dir) / name
    bar = None if args.quiet else ProgressBar()
    result = fit(
        corpus,
        directory,
        model_overrides=_overrides(args, _MODEL_FLAGS),
        train_overrides=_overrides(args, _TRAIN_FLAGS),
        preset=args.preset,
        resume=args.resume,
        overwrite=args.overwrite,
        device=args.device,
        callback=bar,
    )
    if bar is not None:
        bar.close()
    where = "validation" if result.val_held_out else "training (too small to hold out)"
    print(
        f"trained {result.steps} steps in {result.elapsed_s:.1f} s "
        f"({result.chars_per_s:,.0f} chars/s); stopped: {result.stop_reason}"
    )
    print(
        f"best {where} loss {render.num(result.best_val_loss)} nats/char "
        f"at step {result.best_step}; checkpoint: {directory}"
    )
    if result.stop_reason == "interrupted":
        print(f"continue with: charlm train {args.corpus} --name {name} --resume")
        return 130
    _print_confidence(directory)
    return 0


def _print_confidence(directory: Path) -> None:
    """Per-step confidence of the best weights on (up to 2,000 chars of) validation text."""
    predictor = Predictor.from_checkpoint(directory)
    info = predictor.info
    assert info is not None
    text = read_corpus(info.summary["corpus"])
    cfg = info.train_config
    sample = split_text(text, cfg["val_fraction"], cfg["split"]).val_blocks[0][:2000]
    if len(sample) < 2:
        return
    result = predictor.score(sample, alternatives=0)
    print("per-step confidence: " + render.score_summary(result))
    cells = [f"{render.show_char(s.char)} {s.prob:.4f}" for s in result.steps[:26]]
    print("\n".join(render.wrap(cells)))


def _predictor(args: argparse.Namespace) -> Predictor:
    return Predictor.from_checkpoint(checkpoint.resolve(args.checkpoint, args.checkpoints_dir))


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2))


def cmd_predict(args: argparse.Namespace) -> int:
    if args.top_k < 0 or args.length < 0:
        raise InputError("--top-k and --continue must be >= 0")
    result = _predictor(args).predict(args.text, args.top_k, args.length, alternatives=3)
    if args.json:
        _print_json(
            {
                "next": render.distribution_json(result.next),
                **render.continuation_json(result.continuation),
            }
        )
    else:
        print(render.predict_text(args.text, result.next, result.continuation))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    if args.alternatives < 0:
        raise InputError("--alternatives must be >= 0")
    predictor = _predictor(args)
    result = predictor.score(args.text, alternatives=args.alternatives)
    if args.html is not None:
        model = predictor.info.path.name if predictor.info is not None else "model"
        try:
            args.html.write_text(score_report(args.text, result, model=model), encoding="utf-8")
        except OSError as e:
            raise InputError(f"--html {args.html}: cannot write it ({e.strerror or e})") from e
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        _print_json(render.score_json(result))
    else:
        print(render.score_table(result))
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    config = SampleConfig(
        length=args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    where = checkpoint.resolve(args.checkpoint, args.checkpoints_dir)
    predictor = Predictor.from_checkpoint(where, bf16_steps=args.bf16)
    predictor.vocab.check(args.prompt, what="prompt")
    sys.stdout.write(args.prompt)
    for char in predictor.sample(args.prompt, config):
        sys.stdout.write(char)
    sys.stdout.write("\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    predictor = _predictor(args)
    result = predictor.evaluate(read_corpus(args.corpus), what=f"corpus {args.corpus}")
    if args.json:
        _print_json(
            {"loss": result.loss, "bits_per_char": result.bits_per_char, "chars": result.chars}
        )
    else:
        print(render.eval_text(args.corpus, result))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    directory = checkpoint.resolve(args.checkpoint, args.checkpoints_dir)
    if not (directory / METRICS_FILE).is_file():
        raise InputError(f"{directory}: no {METRICS_FILE} to plot")
    print(plot_metrics(directory, args.out))
    return 0


_SERVE_LIMITS = (
    "max_text_chars",
    "max_continuation",
    "max_generate_length",
    "max_alternatives",
    "max_pending",
    "max_batch",
    "batch_wait_ms",
)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run uvicorn on the service's app factory; settings travel as CHARLM_* variables
    so that every worker process builds the same app."""
    import uvicorn

    from service.settings import ENV_PREFIX, settings_from_env

    env = {ENV_PREFIX + "CHECKPOINTS_DIR": str(args.checkpoints)}
    for name in _SERVE_LIMITS:
        if getattr(args, name) is not None:
            env[ENV_PREFIX + name.upper()] = str(getattr(args, name))
    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    settings_from_env(env)  # refuse bad values here, with a one-line error
    os.environ.update(env)
    if not Path(args.checkpoints).is_dir():
        print(
            f"charlm: warning: {args.checkpoints} does not exist yet; no models to serve",
            file=sys.stderr,
        )
    uvicorn.run(
        "service.app:create_app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
    )
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


_COMMANDS = {
    "train": cmd_train,
    "predict": cmd_predict,
    "score": cmd_score,
    "generate": cmd_generate,
    "eval": cmd_eval,
    "corpus": cmd_corpus,
    "serve": cmd_serve,
    "plot": cmd_plot,
}
