"""What a model may be called: the one rule, in one place.

A model is served under the name of its checkpoint directory, so a model name is a
directory name that means the same thing on every system, in a URL, a JSON body, a log
line and a shell, and that can never reach outside the checkpoints directory:

    1 to 128 ASCII letters, digits, '.', '_' and '-', the first a letter or a digit,
    and no '..' anywhere.

So no path separator, no '.' or '..', no hidden ('.x') directory, no space, no accent.
`charlm train` names its checkpoint by this rule (`--name` must follow it; the default,
from the corpus file's stem, is made to by `servable_name`), and the server
(`charlm.registry`) serves exactly the checkpoint directories whose names follow it,
listing every other one, with the reason, under its errors.

`servable_name` is deterministic and keeps a name that already follows the rule as it
is, so the same corpus always gives the same name (and `--resume` finds it again).
"""

from __future__ import annotations

import re
import unicodedata

from charlm.errors import ModelNameError

__all__ = [
    "FALLBACK",
    "MAX_LENGTH",
    "NAME_PATTERN",
    "RULE",
    "check_name",
    "is_servable",
    "servable_name",
    "shown",
]

MAX_LENGTH = 128
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_LENGTH - 1}}}")
RULE = (
    f"names are 1 to {MAX_LENGTH} ASCII letters, digits, '.', '_' or '-', "
    "starting with a letter or digit, with no '..'"
)
"""The rule in words, for messages and help text."""
FALLBACK = "model"
"""The name of a model whose corpus stem has nothing usable in it ('', '...', '日本')."""

_OUTSIDE = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")


def is_servable(name: object) -> bool:
    """Whether `name` follows the rule (so the server serves a directory of that name)."""
    return isinstance(name, str) and bool(NAME_PATTERN.fullmatch(name)) and ".." not in name


def check_name(name: object) -> None:
    """Raise `ModelNameError` (saying the rule) unless `name` follows it."""
    if is_servable(name):
        return
    what = shown(name) if isinstance(name, str) else type(name).__name__
    raise ModelNameError(
        f"invalid model name {what}: use the name of a checkpoint directory ({RULE})"
    )


def servable_name(text: str) -> str:
    """The name following the rule that stands for `text` (e.g. a corpus file's stem).

    A name that follows the rule is returned as it is. Otherwise accents are stripped
    (Unicode decomposition: 'café' -> 'cafe'), each run of characters outside the rule
    becomes one '-', runs of dots one '.', what the rule cannot start with is dropped
    from the front ('.hidden' -> 'hidden') and '-' and '.' from the end, and the result
    is cut to `MAX_LENGTH` characters; `FALLBACK` when nothing is left.
    """
    if is_servable(text):
        return text
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    name = _DOTS.sub(".", _OUTSIDE.sub("-", plain)).lstrip("._-")
    name = name[:MAX_LENGTH].rstrip("-.")
    return name if is_servable(name) else FALLBACK


def shown(name: str, limit: int = 64) -> str:
    """`name` quoted for a message or a log line, whatever it holds: every character
    outside printable ASCII escaped (`ascii`); a longer one is cut, whole escapes kept,
    to at most `limit` characters ending in '...'."""
    text = ascii(name)
    if len(text) <= limit:
        return text
    lo, hi = 0, len(name)  # the longest start of `name` whose form fits, then '...'
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if len(ascii(name[:mid])) <= limit - 3 else (lo, mid - 1)
    return ascii(name[:lo]) + "..."
