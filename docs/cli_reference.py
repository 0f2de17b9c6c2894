"""Write docs/cli.md, the command-line reference: every command's `--help`, from the parser.

    python docs/cli_reference.py

tests/test_docs.py fails when docs/cli.md is not what this writes, so the reference
cannot drift from the parser.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

PAGE = Path(__file__).resolve().parent / "cli.md"
WIDTH = 100


def commands(
    parser: argparse.ArgumentParser, prefix: str
) -> list[tuple[str, argparse.ArgumentParser]]:
    """`(command line, parser)` for `parser` and every subcommand under it, depth first."""
    found = [(prefix, parser)]
    for action in parser._actions:  # argparse lists its subcommands nowhere public
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, f"{prefix} {name}")
    return found


def reference() -> str:
    """The page: each command's `--help` as the command line prints it, WIDTH columns."""
    from charlm.cli.parser import build_parser

    os.environ["COLUMNS"] = str(WIDTH)
    lines = [
        "# Command-line reference",
        "",
        "Every command's `--help`, as `charlm` prints it. This page is written by",
        "`python docs/cli_reference.py`, and a test fails when it differs from the parser.",
        "",
    ]
    for command, parser in commands(build_parser(), "charlm"):
        lines += [f"## `{command}`", "", "```", parser.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    PAGE.write_text(reference(), encoding="utf-8")
    print(f"wrote {PAGE}")
