"""Reading the training log of a loop charlm did not run, so its curve gets the same reading.

A log is a CSV file with a header row, or a JSON Lines file with one object per line.
Columns (keys): `step` and `loss` are required; `val_loss`, `grad_norm` and `lr` are read
when present. An empty cell (or a missing key, or null) means "not logged at this step",
so a row may carry only a validation loss. charlm's own metrics.jsonl reads as it is.

Every problem is an `InputError` that names the file and the line: an empty file, a
missing column, a value that is not a number, a row with neither loss.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from charlm.errors import InputError

__all__ = ["OPTIONAL", "REQUIRED", "read_log"]

REQUIRED = ("step", "loss")
OPTIONAL = ("val_loss", "grad_norm", "lr")
_MAX_BYTES = 512 * 1024 * 1024


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The log's rows as the detectors take them: {"kind": "train", "step", "loss", ...}
    and {"kind": "eval", "step", "val_loss"}, in file order."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from e
    if size > _MAX_BYTES:
        raise InputError(f"{path}: {size:,} bytes; logs over {_MAX_BYTES:,} bytes are refused")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read it as UTF-8 text ({e})") from e
    if not text.strip():
        raise InputError(f"{path}: the file is empty; expected a header row and one row per step")
    raw = _jsonl(path, text) if _is_jsonl(path, text) else _csv(path, text)
    rows: list[dict[str, Any]] = []
    for line, values in raw:
        rows.extend(_rows(path, line, values))
    if not any(r["kind"] != "eval" for r in rows):
        raise InputError(f"{path}: no line has a training loss (the 'loss' column is empty)")
    return rows


def _is_jsonl(path: Path, text: str) -> bool:
    return path.suffix.lower() in (".jsonl", ".json", ".ndjson") or text.lstrip().startswith("{")


def _jsonl(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as e:
            raise InputError(f"{path}, line {n}: not a JSON object ({e})") from e
        if not isinstance(value, dict):
            raise InputError(f"{path}, line {n}: a JSON {type(value).__name__}, not an object")
        if value.get("kind") in ("resume", "diagnosis", "reference"):
            continue  # charlm's own bookkeeping rows
        yield n, value


def _csv(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(
            f"{path}, line 1: no {' or '.join(repr(c) for c in missing)} column; the header "
            f"has {', '.join(repr(h) for h in header) or 'nothing'} (needed: step, loss; "
            f"optional: {', '.join(OPTIONAL)})"
        )
    for n, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise InputError(f"{path}, line {n}: {len(cells)} values for {len(header)} columns")
        yield n, {h: c.strip() for h, c in zip(header, cells, strict=True) if c.strip() != ""}


def _number(path: Path, line: int, column: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InputError(f"{path}, line {line}: {column} is {value!r}, not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"{path}, line {line}: {column} is {value!r}, not a number") from None
        return number
    raise InputError(f"{path}, line {line}: {column} is {value!r}, not a number")


def _rows(path: Path, line: int, values: dict[str, Any]) -> list[dict[str, Any]]:
    if "step" not in values:
        raise InputError(f"{path}, line {line}: no step")
    step = _number(path, line, "step", values["step"])
    if step is None or not math.isfinite(step) or step != int(step) or step < 0:
        raise InputError(f"{path}, line {line}: step is {values['step']!r}, not a whole number")
    numbers = {c: _number(path, line, c, values.get(c)) for c in ("loss", *OPTIONAL)}
    kind = values.get("kind")
    out: list[dict[str, Any]] = []
    if numbers["loss"] is not None and kind in (None, "train"):
        loss = numbers["loss"]
        row: dict[str, Any] = {
            "kind": "train" if math.isfinite(loss) else "nonfinite",
            "step": int(step),
            "loss": loss,
        }
        row.update({c: numbers[c] for c in ("grad_norm", "lr") if numbers[c] is not None})
        for extra in ("grad_norms", "update_ratios", "gates", "cell", "clipped"):
            if extra in values:
                row[extra] = values[extra]
        out.append(row)
    if numbers["val_loss"] is not None and kind in (None, "eval"):
        out.append({"kind": "eval", "step": int(step), "val_loss": numbers["val_loss"]})
    if not out and kind is None:
        raise InputError(f"{path}, line {line}: neither loss nor val_loss has a value")
    return out
