"""Command-line flags derived from the config classes, so each setting is declared once.

A config dataclass field declared with `setting(default, help)` becomes the flag
`--field-name`, typed from its annotation, with its help text and its default; a
pydantic model's fields (the service settings) become flags the same way, from their
descriptions. Flags default to None ("not given"), so that a value is passed on only
when the user gave one; the help shows the default that then applies.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from charlm._config import help_of

__all__ = ["HelpFormatter", "add_dataclass_flags", "add_model_flags", "flag_for", "given"]


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default, unless its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or not action.option_strings:
            return text
        if isinstance(action, argparse._StoreTrueAction | argparse._VersionAction):
            return text
        if isinstance(action, argparse._HelpAction):
            return text
        shown = "none" if action.default is None else action.default
        return f"{text} (default: {shown})"


_METAVARS = {int: "N", float: "X", str: "TEXT", Path: "DIR"}

_TYPES: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": float,
    "str": str,
    "Path": Path,
    "int | None": int,
    "float | None": float,
    "str | None": str,
}


def flag_for(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_flags(
    group: argparse._ActionsContainer,
    cls: type,
    *,
    skip: Iterable[str] = (),
    defaults: Mapping[str, str] | None = None,
    choices: Mapping[str, Iterable[str]] | None = None,
) -> list[str]:
    """A flag for every field of the dataclass `cls` but `skip`; their names.

    `defaults` replaces the shown default of a field (e.g. one that depends on a preset).
    """
    names = []
    for f in fields(cls):
        if f.name in skip:
            continue
        kind = _TYPES.get(str(f.type))
        if kind is None:
            raise TypeError(f"{cls.__name__}.{f.name}: no flag type for {f.type}")
        shown = (defaults or {}).get(f.name)
        if shown is None:
            shown = "none" if f.default is None or f.default is MISSING else str(f.default)
        group.add_argument(
            flag_for(f.name),
            dest=f.name,
            type=kind,
            metavar=None if f.name in (choices or {}) else _METAVARS.get(kind),  # type: ignore[call-overload]
            default=None,
            choices=list((choices or {})[f.name]) if f.name in (choices or {}) else None,
            help=f"{help_of(f)} (default: {shown})",
        )
        names.append(f.name)
    return names


def add_model_flags(
    group: argparse._ActionsContainer, model: Any, *, skip: Iterable[str] = ()
) -> list[str]:
    """A flag for every field of the pydantic model class `model` but `skip`."""
    names = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        annotation = getattr(info.annotation, "__name__", str(info.annotation))
        # list[str] fields take comma-separated values on the command line
        kind = _TYPES.get(
            annotation.replace("pathlib.", ""), _comma_list if annotation == "list" else str
        )
        if annotation == "bool":
            group.add_argument(
                flag_for(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{info.description} (default: {'on' if info.default else 'off'})",
            )
        else:
            shown = "none" if info.default is None else info.default
            if isinstance(shown, list | tuple):
                shown = ", ".join(map(str, shown)) or "none"
            text = str(info.description or "")
            literal = typing.get_args(info.annotation) if annotation == "Literal" else ()
            group.add_argument(
                flag_for(name),
                dest=name,
                type=str if literal else kind,
                choices=list(literal) or None,
                metavar=None if literal else _METAVARS.get(kind, "LIST"),  # type: ignore[call-overload]
                default=None,
                help=text if "default" in text else f"{text} (default: {shown})",
            )
        names.append(name)
    return names


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def given(args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The flags among `names` that the user gave."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
