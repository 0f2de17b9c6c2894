"""Tensor files: checked before they are read, written so that a crash leaves no torn file.

Weights are stored with safetensors, whose header (names, dtypes, shapes, byte ranges)
is JSON in front of the data. `read_header` reads and checks that header alone, with
its size bounded (and the file a regular file, checked by `charlm.files`), so that a
checkpoint's tensors can be compared with its config before a single weight is
allocated; `read_tensors` then loads them. `write_tensors` writes to a hidden temporary
file, fsyncs it and renames it into place under a fresh name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from charlm import files
from charlm.errors import CheckpointError, IncompatibleCheckpointError

__all__ = [
    "FLOAT_DTYPES",
    "MAX_ABS_WEIGHT",
    "TensorInfo",
    "atomic_write_bytes",
    "check_weights",
    "read_header",
    "read_tensors",
    "remove_unreferenced",
    "write_tensors",
]

FLOAT_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}
"""The weight dtypes a checkpoint may use, with their sizes in bytes."""
MAX_HEADER_BYTES = 16 * 2**20
MAX_ABS_WEIGHT = 1e9
"""Largest weight magnitude accepted. With every size within `ModelConfig`'s bounds it
keeps every sum the model computes finite in float32 (65,536 x 1e9 x 1e9 is about 1e23,
far below 3.4e38), so no input can drive a loaded model to NaN; trained weights stay
many orders of magnitude below it."""

_TENSOR_FILES = files.FileKind("tensor files", None, IncompatibleCheckpointError)

TensorInfo = tuple[str, tuple[int, ...]]
"""(dtype name as safetensors writes it, shape)."""


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Names, dtypes and shapes of the tensors in the safetensors file `path`.

    Reads only the header; refuses headers over 16 MiB, malformed entries, and byte
    ranges that do not match the shapes or the file's size.
    """
    if not path.exists():
        raise IncompatibleCheckpointError(f"{path.name}: tensor file is missing")
    try:
        with files.open_regular(path, path.name, _TENSOR_FILES) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(8)
            if len(head) < 8:
                raise _bad(path, "is too short to be a safetensors file")
            n = int.from_bytes(head, "little")
            if n > MAX_HEADER_BYTES or n > size - 8:
                raise _bad(path, f"declares a header of {n} bytes; the file is {size} bytes")
            raw = f.read(n)
    except OSError as e:
        raise _bad(path, f"cannot be read ({e.strerror or e})") from e
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _bad(path, "has a header that is not JSON") from e
    if not isinstance(header, dict):
        raise _bad(path, "has a header that is not a JSON object")
    out: dict[str, TensorInfo] = {}
    data_bytes = size - 8 - n
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, offsets = _entry(entry)
        if dtype is None or shape is None or offsets is None:
            raise _bad(path, f"has a malformed header entry for {name!r}")
        itemsize = FLOAT_DTYPES.get(dtype)
        if itemsize is not None:
            start, end = offsets
            if not 0 <= start <= end <= data_bytes or end - start != math.prod(shape) * itemsize:
                raise _bad(path, f"tensor {name} has byte ranges that do not fit its shape")
        out[name] = (dtype, shape)
    return out


def _entry(entry: object) -> tuple[str | None, tuple[int, ...] | None, tuple[int, int] | None]:
    if not isinstance(entry, dict):
        return None, None, None
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    ok_shape = isinstance(shape, list) and len(shape) <= 8 and all(_is_count(d) for d in shape)
    ok_offsets = isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))
    return (
        dtype if isinstance(dtype, str) else None,
        tuple(shape) if ok_shape else None,  # type: ignore[arg-type]
        (offsets[0], offsets[1]) if ok_offsets else None,  # type: ignore[index]
    )


def _is_count(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**53


def check_weights(
    path: Path, header: Mapping[str, TensorInfo], expected: Mapping[str, tuple[int, ...]]
) -> None:
    """Refuse a weights file whose tensors are not exactly `expected` (name -> shape),
    in one of `FLOAT_DTYPES`."""
    if len(header) != len(expected) or set(header) != set(expected):
        missing = sorted(set(expected) - set(header))
        extra = sorted(set(header) - set(expected))
        raise _bad(
            path,
            "does not match the model config (missing: "
            f"{_names(missing)}; unexpected: {_names(extra)})",
        )
    for name, want in expected.items():
        dtype, shape = header[name]
        if dtype not in FLOAT_DTYPES:
            raise _bad(path, f"tensor {name} is {dtype}; weights must be F32, F16, BF16 or F64")
        if shape != want:
            raise _bad(path, f"tensor {name} has shape {shape}, the model config needs {want}")


def _names(names: list[str]) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return dict(load_file(str(path)))
    except FileNotFoundError as e:
        raise IncompatibleCheckpointError(f"{path.name}: tensor file is missing") from e
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _bad(path, f"is not a readable tensor file ({e})") from e


def check_finite(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse NaN, infinity, and weights beyond `MAX_ABS_WEIGHT`."""
    for name, t in tensors.items():
        if not t.numel():
            continue
        low, high = (float(x) for x in torch.aminmax(t))  # NaN propagates; no temporaries
        if not (math.isfinite(low) and math.isfinite(high)):
            raise _bad(path, f"tensor {name} holds NaN or infinity")
        if max(-low, high) > MAX_ABS_WEIGHT:
            raise _bad(path, f"tensor {name} holds weights beyond {MAX_ABS_WEIGHT:g}")


def write_tensors(
    directory: Path, kind: str, step: int, tensors: Mapping[str, torch.Tensor]
) -> str:
    """Write `tensors` as `<kind>-<step>-<tag>.safetensors` in `directory`; its name."""
    name = f"{kind}-{step:08d}-{secrets.token_hex(3)}.safetensors"
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    tmp = directory / f".{name}.tmp"
    try:
        save_file(plain, str(tmp), metadata={"charlm_format": "1"})
        os.chmod(tmp, 0o644)  # as readable as the manifest beside it
        _fsync(tmp)
        os.replace(tmp, directory / name)
    except (OSError, SafetensorError) as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CheckpointError(f"{directory}: could not write {name} ({_reason(e)})") from e
    return name


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temporary file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(3)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CheckpointError(f"{path}: could not write it ({_reason(e)})") from e
    _fsync_dir(path.parent)


def remove_unreferenced(directory: Path, keep: set[str | None]) -> None:
    """Delete tensor files and temporary files of ours that `keep` does not name."""
    with contextlib.suppress(OSError):
        for p in directory.iterdir():
            ours = p.suffix == ".safetensors" and p.name.startswith(("weights-", "resume-"))
            stale_tmp = p.name.startswith(".") and p.name.endswith(".tmp")
            if (ours and p.name not in keep) or stale_tmp:
                with contextlib.suppress(OSError):
                    p.unlink()


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _bad(path: Path, reason: str) -> IncompatibleCheckpointError:
    return IncompatibleCheckpointError(f"{path.name}: {reason}")
