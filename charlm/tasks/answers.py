"""The held-out answer file: one question a model should answer per line.

Each line is `prompt<TAB>answer[<TAB>field=value]...`, in UTF-8, lines ending in "\\n".
Prompts hold newlines and tabs, so every part of a line is escaped: a backslash is
written `\\\\`, a newline `\\n`, a tab `\\t`, and a prompt's leading `#` `\\#` (so that
the line is not read as a comment); nothing else is escaped, and any other backslash
sequence is an error. Blank lines and lines starting with `#` are skipped. Fields
(`points=3`, `gap=20`) are free-form labels by which accuracy is broken down.

This module owns the format (`write_answers`, `read_answers`) and writing a text file
without ever leaving half of it behind; it knows nothing of models.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from charlm.data import read_file_bytes
from charlm.errors import CorpusError, InputError
from charlm.files import FileKind

__all__ = ["AnswerItem", "read_answers", "write_answers"]

_ESCAPES = {"\\": "\\", "n": "\n", "t": "\t", "#": "#"}
MAX_ANSWER_BYTES = 256 * 2**20
"""The largest answer file read (it is read whole): a million items of 200 characters."""
_ANSWER_FILES = FileKind("answer files", MAX_ANSWER_BYTES, CorpusError)


@dataclass(frozen=True)
class AnswerItem:
    """A prompt and the exact text that should follow it, with labels (`fields`).

    `line` is where `read_answers` found the item (None otherwise): errors about the
    item name it. It takes no part in comparisons.
    """

    prompt: str
    answer: str
    fields: dict[str, str] = field(default_factory=dict)
    line: int | None = field(default=None, compare=False, repr=False)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def _unescape(text: str, where: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        code = text[i + 1 : i + 2]
        if code not in _ESCAPES:
            shown = f"'\\{code}'" if code else "a lone '\\' at the end"
            raise CorpusError(
                f"{where}: bad escape {shown} at column {i + 1}; "
                "the escapes are \\\\, \\n, \\t and \\# (write a backslash as \\\\)"
            )
        out.append(_ESCAPES[code])
        i += 2
    return "".join(out)


def _line_of(item: AnswerItem, number: int) -> str:
    if not isinstance(item, AnswerItem):
        raise InputError(f"item {number} is a {type(item).__name__}, expected an AnswerItem")
    if not item.answer:
        raise InputError(f"item {number}: the answer is empty")
    prompt = _escape(item.prompt)
    if prompt.startswith("#"):
        prompt = "\\" + prompt
    parts = [prompt, _escape(item.answer)]
    for name, value in item.fields.items():
        if not name or "=" in name:
            raise InputError(f"item {number}: field name {name!r} must be non-empty, without '='")
        parts.append(f"{_escape(name)}={_escape(value)}")
    return "\t".join(parts) + "\n"


def write_answers(path: str | Path, items: Iterable[AnswerItem]) -> Path:
    """Write `items` to `path` (parent directories made, the file replaced whole)."""
    text = "".join(_line_of(item, n) for n, item in enumerate(items, 1))
    return write_text_atomically(Path(path), text)


def read_answers(path: str | Path) -> list[AnswerItem]:
    """The items of an answer file, each knowing its line. Every problem is a
    `CorpusError` naming the file and the line."""
    p = Path(path)
    raw = read_file_bytes(p, f"answer file {p}", _ANSWER_FILES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise CorpusError(
            f"answer file {p}, line {line}: not valid UTF-8 (byte 0x{raw[e.start]:02x}); "
            "convert it to UTF-8 first, e.g. with iconv"
        ) from e
    items = [
        _parse(row, f"answer file {p}, line {n}", n)
        for n, row in enumerate(text.split("\n"), 1)
        if row.strip(" \r") and not row.startswith("#")
    ]
    if not items:
        raise CorpusError(f"answer file {p}: no items (only blank or # comment lines)")
    return items


def _parse(row: str, where: str, number: int) -> AnswerItem:
    parts = row.split("\t")
    if len(parts) < 2:
        raise CorpusError(f"{where}: no tab; expected prompt<TAB>answer[<TAB>field=value]...")
    prompt, answer = _unescape(parts[0], where), _unescape(parts[1], where)
    if not answer:
        raise CorpusError(f"{where}: the answer (after the first tab) is empty")
    fields: dict[str, str] = {}
    for part in parts[2:]:
        name, eq, value = part.partition("=")
        name = _unescape(name, where)
        if not eq or not name:
            raise CorpusError(f"{where}: bad field {part[:40]!r}; expected field=value")
        if name in fields:
            raise CorpusError(f"{where}: the field {name!r} is given twice")
        fields[name] = _unescape(value, where)
    return AnswerItem(prompt, answer, fields, line=number)


def write_text_atomically(path: Path, text: str) -> Path:
    """Replace `path` with `text` in UTF-8 ("\\n" kept as it is): a temporary file beside
    it, then a rename, so that a reader never sees half a file. Makes parent dirs."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except (OSError, UnicodeEncodeError) as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, UnicodeEncodeError):
            raise InputError(
                f"{path}: {e.object[e.start : e.start + 1]!r} at position {e.start} "
                "cannot be written in UTF-8"
            ) from e
        raise CorpusError(f"{path}: could not write it ({e.strerror or e})") from e
    return path
