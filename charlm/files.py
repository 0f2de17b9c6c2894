"""Files a user names, checked before a byte of them is read.

Every reader of such a file (a corpus, a prepared corpus's `corpus.json` and `ids.npy`,
a settings or sweep space file, a training log, a checkpoint's manifest and tensor
headers) opens it here, with a `FileKind` that says what the file is called in errors,
how large it may be and which `CharLMError` refuses it:

- `open_regular` refuses anything but a regular file: a FIFO, a device, a socket or a
  directory is named in the error. A `stat` refuses most of them before they are opened
  at all; the file is then opened with O_NONBLOCK (so that a FIFO swapped in meanwhile
  cannot block the open) and checked again with `fstat` on the open descriptor, so what
  is read is what was checked. It also refuses a file over the kind's size limit.
- `read_regular` reads such a file whole, never more than the limit, even from a file
  that grows while it is read.
- `loads_json` and `loads_toml` parse text only once its nesting is known to be within a
  small limit: the brackets outside strings (and TOML's comments) are counted first, so
  neither parser recurses deeper than that, and no RecursionError escapes as a traceback.

Each error starts with the caller's name for the file (`what`) and is the caller's kind
of error. This module knows no file format beyond JSON's and TOML's brackets.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from charlm.errors import CharLMError

__all__ = [
    "FileKind",
    "format_size",
    "loads_json",
    "loads_toml",
    "open_regular",
    "read_regular",
]

_CHUNK = 2**20
_NOT_REGULAR = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True)
class FileKind:
    """A kind of file a user names: what errors call such files (`plural`), the largest
    one accepted (`max_bytes`; None for a file that is streamed or mapped, never held
    whole), and the error that refuses one."""

    plural: str
    max_bytes: int | None
    error: type[CharLMError]

    def too_large(self, what: str, size: int) -> CharLMError:
        assert self.max_bytes is not None
        return self.error(
            f"{what}: {size:,} bytes; {self.plural} over {format_size(self.max_bytes)} are refused"
        )


def format_size(n: int) -> str:
    """`n` bytes as people write a limit: '1 MiB', '512 MiB', '1,000 bytes'."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale:,} {unit}"
    return f"{n:,} bytes"


def open_regular(path: str | Path, what: str, kind: FileKind) -> BinaryIO:
    """`path` opened for reading, in binary, once it is known to be a regular file within
    `kind.max_bytes` (see the module docstring); else `kind.error` starting with `what`."""
    try:
        _check(os.stat(path), what, kind)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise kind.error(f"{what}: cannot read it ({e.strerror or e})") from e
    try:
        _check(os.fstat(fd), what, kind)  # the file opened is the file checked
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check(st: os.stat_result, what: str, kind: FileKind) -> None:
    if not stat.S_ISREG(st.st_mode):
        name = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "not a file")
        raise kind.error(f"{what}: is {name}, not a regular file")
    if kind.max_bytes is not None and st.st_size > kind.max_bytes:
        raise kind.too_large(what, st.st_size)


def read_regular(path: str | Path, what: str, kind: FileKind) -> bytes:
    """The bytes of the regular file `path`, at most `kind.max_bytes` of them (a file
    that grows past the limit while it is read is refused all the same)."""
    limit = kind.max_bytes
    with open_regular(path, what, kind) as f:
        try:
            size = os.fstat(f.fileno()).st_size
            data = f.read(size + 1)  # one more: a file that grew (or /proc's, sized 0)
            if len(data) <= size:
                return data
            parts, total = [data], len(data)
            while limit is None or total <= limit:
                part = f.read(_CHUNK)
                if not part:
                    return b"".join(parts)
                parts.append(part)
                total += len(part)
        except OSError as e:
            raise kind.error(f"{what}: cannot read it ({e.strerror or e})") from e
    assert limit is not None  # the loop above ends only past a limit
    raise kind.error(f"{what}: grew past {format_size(limit)} while it was read")


def loads_json(text: str, what: str, kind: FileKind, max_depth: int, **hooks: Any) -> Any:
    """`json.loads(text, **hooks)` once its objects and arrays are known to nest at most
    `max_depth` deep (the outermost counts 1); a syntax error stays a ValueError."""
    if _too_deep(text, _JSON_STRING, max_depth):
        raise _deep(what, kind, max_depth)
    try:
        return json.loads(text, **hooks)
    except RecursionError as e:
        raise _deep(what, kind, max_depth) from e


def loads_toml(text: str, what: str, kind: FileKind, max_depth: int) -> dict[str, Any]:
    """`tomllib.loads(text)` once its tables and arrays are known to nest at most
    `max_depth` deep (the document's own table counts 1, and a dotted key's parts each
    count); a syntax error stays a `tomllib.TOMLDecodeError` (a ValueError)."""
    if _too_deep(text, _TOML_SKIPPED, max_depth - 1):
        raise _deep(what, kind, max_depth)
    try:
        data = tomllib.loads(text)
    except RecursionError as e:
        raise _deep(what, kind, max_depth) from e
    if _nested_deeper_than(data, max_depth):  # dotted keys nest without brackets
        raise _deep(what, kind, max_depth)
    return data


def _nested_deeper_than(data: object, max_depth: int) -> bool:
    """Whether dicts and lists in `data` nest deeper than `max_depth` (`data` counts 1);
    walked with a stack, not recursion."""
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children: Iterable[object]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _deep(what: str, kind: FileKind, max_depth: int) -> CharLMError:
    return kind.error(
        f"{what}: nested deeper than {max_depth} levels, the most {kind.plural} may have"
    )


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_TOML_SKIPPED = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*"{3,5}'  # multi-line basic string
    r"|'''.*?'{3,5}"  # multi-line literal string
    r'|"(?:[^"\\\n]|\\.)*"'  # basic string
    r"|'[^'\n]*'"  # literal string
    r"|#[^\n]*",  # comment
    re.DOTALL,
)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_OPENING = np.frombuffer(b"[{", np.uint8)


def _too_deep(text: str, skipped: re.Pattern[str], limit: int) -> bool:
    """Whether the brackets of `text` outside what `skipped` matches (strings, comments)
    nest deeper than `limit`; counted in chunks, so a hostile file costs its size."""
    if text.count("[") + text.count("{") <= limit:  # the usual case: too few to nest
        return False
    code = _NOT_BRACKET.sub("", skipped.sub("", text))
    brackets = np.frombuffer(code.encode("ascii"), np.uint8)
    depth = 0
    for start in range(0, len(brackets), _CHUNK):
        part = brackets[start : start + _CHUNK]
        levels = np.cumsum(np.where(np.isin(part, _OPENING), 1, -1)) + depth
        if int(levels.max()) > limit:
            return True
        depth = int(levels[-1])
    return False
