"""The `charlm` command line: flags in, configs built, one library call, results printed.

The model, training, sampling and service flags are derived from the config classes
(`charlm/flags.py`), so their names, help and defaults are declared once, there. Every
subcommand that finds checkpoints takes `--checkpoints-dir`. `--json` prints the
library's result objects as they are (the same JSON the HTTP service answers).

Exit codes: 0 success, 2 a `CharLMError` (printed as one line on stderr, no traceback)
or a usage error, 130 training interrupted (a checkpoint is saved first).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from tqdm import tqdm

from charlm.cli.commands import COMMANDS
from charlm.cli.parser import build_parser
from charlm.errors import CharLMError

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for `train --nproc`
    handler = _BarSafeHandler()
    handler.setFormatter(logging.Formatter("charlm: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    try:
        return COMMANDS[args.command](args)
    except CharLMError as e:
        print(f"charlm: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `charlm ... | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


class _BarSafeHandler(logging.Handler):
    """Warnings on stderr, written above a progress bar rather than through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)
