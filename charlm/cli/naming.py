"""How the command line names what it writes: a model (`charlm train --name`, or the
corpus file's stem) and a sweep's study (`charlm sweep --study`). Names follow
`charlm.names`' rule; a given one that does not is refused with the name to use instead,
and one taken from a file's stem is made to follow it (and said so when it changed).
"""

from __future__ import annotations

from pathlib import Path

from charlm import names, render
from charlm.errors import ModelNameError

__all__ = ["default_name", "given_name"]


def given_name(flag: str, name: str, *, what: str = "a model name", where: str = "") -> str:
    """`name`, given with `flag`, if it follows the model-name rule (`charlm.names`);
    refused in one line that states the rule and, where there is one, the name to use
    (`where`: the flag that sets the location instead)."""
    if names.is_servable(name):
        return name
    better = names.servable_name(name)
    hint = f"; try {flag} {better}" if better != names.FALLBACK else ""
    if where:
        hint += f", or give {where}" if hint else f"; give {where}"
    raise ModelNameError(f"{flag} {names.shown(name)}: not {what} ({names.RULE}){hint}")


def default_name(corpus: Path, *, say: bool, label: str = "model name") -> str:
    """The model name taken from the corpus file's stem, made to follow the rule; with
    `say`, one line tells when it is not the stem itself."""
    name = names.servable_name(corpus.stem)
    if say and name != corpus.stem:
        print(f"{label}: {name} (from {render.quoted(corpus.name)}; {names.RULE})")
    return name
