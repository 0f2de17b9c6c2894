"""A corpus of hostile checkpoints: each a copy of a good one with one thing made wrong.

`make_all(good, root)` writes every case as a directory under `root` and returns
{name: what is wrong}. Used by tests/test_reliability.py (every case through the
library, the CLI, server start-up and hot reload) and by the long campaign in
tests/reliability/.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from charlm import names

Edit = Callable[[Path], None]

SERVED_ONLY = frozenset({"weights-symlink-out", "dir-symlink-out"})
"""Cases that only a server refuses: links out of its checkpoints folder. Given a path
directly, the command line and the library read what the user points them at."""

CASES: dict[str, tuple[str, Edit]] = {}


def case(name: str, what: str) -> Callable[[Edit], Edit]:
    def register(edit: Edit) -> Edit:
        CASES[name] = (what, edit)
        return edit

    return register


def manifest_edit(name: str, what: str, change: Callable[[dict[str, Any]], None]) -> None:
    def edit(d: Path) -> None:
        path = d / "checkpoint.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    CASES[name] = (what, edit)


def raw_manifest(name: str, what: str, text: str | bytes) -> None:
    def edit(d: Path) -> None:
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        (d / "checkpoint.json").write_bytes(data)

    CASES[name] = (what, edit)


def _set(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m[section].__setitem__(key, value)


def _top(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda m: m.__setitem__(key, value)


for key, value, what in [
    ("hidden_size", 1_000_000, "a million hidden units"),
    ("hidden_size", 12_000, "12,000 hidden units (2.4 GB if built)"),
    ("hidden_size", 65_537, "one unit over the bound"),
    ("num_layers", 1_000_000_000, "a billion layers"),
    ("num_layers", 65, "65 layers"),
    ("embedding_dim", 1e9, "a float embedding size"),
    ("embedding_dim", "16", "a string embedding size"),
    ("embedding_dim", None, "a null embedding size"),
    ("vocab_size", -1, "a negative vocabulary size"),
    ("vocab_size", True, "a boolean vocabulary size"),
    ("dropout", 1.5, "dropout over 1"),
    ("dropout", "0.1", "a string dropout"),
    ("weight_drop", 1.0, "weight drop of 1 (every recurrent weight dropped)"),
    ("weight_drop", -0.1, "a negative weight drop"),
    ("colour", "red", "an unknown model config key"),
]:
    manifest_edit(f"model-{key}-{value!s:.12}", what, _set("model_config", key, value))
manifest_edit("model-config-list", "a model config that is a list", _top("model_config", [1, 2]))
manifest_edit(
    "model-config-no-vocab-size",
    "a model config without vocab_size",
    lambda m: m["model_config"].pop("vocab_size"),
)
for value, what in [
    (True, "format_version true (equal to 1 in Python)"),
    (2, "a newer format version"),
    ("1", "a string format version"),
    (1.0, "a float format version"),
]:
    manifest_edit(f"format-{value!r}", what, _top("format_version", value))
manifest_edit("format-missing", "no format version", lambda m: m.pop("format_version"))
for value, what in [
    ("abcdefghijklmnopqrstuvwxyz", "a vocabulary that is a string"),
    (["a"] * 26, "a vocabulary with repeats"),
    (["ab", *"cdefghijklmnopqrstuvwxyz", "z"], "a two-character vocabulary entry"),
    ([5, *"bcdefghijklmnopqrstuvwxyz"], "a number in the vocabulary"),
    ([], "an empty vocabulary"),
    (list("abcde"), "a vocabulary shorter than the model's"),
    ([chr(0x10000 + c) for c in range(100_000)], "100,000 characters for a 26-symbol model"),
    ({"a": 1}, "a vocabulary that is an object"),
]:
    manifest_edit(f"vocab-{what[:24].replace(' ', '-')}", what, _top("vocab", value))
for key, value, what in [
    ("train_config", "fast", "a string training config"),
    ("train_config", {"lr": -1.0}, "a negative learning rate"),
    ("train_config", {"speed": "fast"}, "an unknown training setting"),
    ("summary", [1, 2, 3], "a summary that is a list"),
    ("resume_meta", "step 5", "a string resume record"),
    ("weights", "../../etc/passwd", "a weights path out of the directory"),
    ("weights", "/etc/passwd", "an absolute weights path"),
    ("weights", ".hidden.safetensors", "a hidden weights file name"),
    ("weights", "gone.safetensors", "a weights file that does not exist"),
    ("weights", 7, "a weights name that is a number"),
    ("resume", "../x.safetensors", "a resume path out of the directory"),
]:
    manifest_edit(f"{key}-{what[:20].replace(' ', '-')}", what, _top(key, value))
manifest_edit("weights-key-missing", "no weights entry", lambda m: m.pop("weights"))
manifest_edit(
    "summary-deep-30",
    "a summary nested 30 deep",
    _set("summary", "x", json.loads("[" * 30 + "]" * 30)),
)
raw_manifest("manifest-empty", "an empty checkpoint.json", b"")
raw_manifest(
    "manifest-latin1", "a checkpoint.json that is not UTF-8", b'{"format_version": 1, "x": "\xe9"}'
)
raw_manifest("manifest-array", "a checkpoint.json that is an array", b"[1, 2, 3]")
raw_manifest(
    "manifest-truncated", "a truncated checkpoint.json", b'{"format_version": 1, "vocab": ["a"'
)
raw_manifest("manifest-null", "a checkpoint.json that is null", b"null")


def _text_edit(transform: Callable[[str], str]) -> Edit:
    def edit(d: Path) -> None:
        path = d / "checkpoint.json"
        path.write_bytes(transform(path.read_text(encoding="utf-8")).encode("utf-8"))

    return edit


def summary_member(name: str, what: str, member: str) -> None:
    """A case whose summary starts with `member`, raw JSON text (`"key": value`)."""
    edit = _text_edit(lambda t: t.replace('"summary": {', '"summary": {' + member + ", ", 1))
    CASES[name] = (what, edit)


summary_member("summary-big-int", "a 5,000-digit integer in the summary", '"big": ' + "7" * 5000)
summary_member(
    "summary-deep-100000", "a summary nested 100,000 deep", '"x": ' + "[" * 100_000 + "]" * 100_000
)
summary_member("summary-lone-surrogate", "a lone surrogate in the summary", '"note": "x\\udc80y"')
summary_member("summary-key-surrogate", "a lone surrogate in a summary key", '"\\ud83d": 1')
summary_member("summary-nan", "NaN in the summary", '"x": NaN')
summary_member("summary-1e400", "a float beyond float64 in the summary", '"x": 1e400')
CASES["vocab-lone-surrogate"] = (
    "a lone surrogate in the vocabulary",
    _text_edit(lambda t: t.replace('"a"', '"\\ud800"', 1)),
)


@case("manifest-2gb", "a 2 GB checkpoint.json (sparse)")
def _huge_manifest(d: Path) -> None:
    with open(d / "checkpoint.json", "r+b") as f:
        f.truncate(2 * 2**30)


@case("manifest-is-directory", "checkpoint.json is a directory")
def _manifest_dir(d: Path) -> None:
    (d / "checkpoint.json").unlink()
    (d / "checkpoint.json").mkdir()


# -- the weights file -----------------------------------------------------------------


def _weights(d: Path) -> Path:
    name = json.loads((d / "checkpoint.json").read_text(encoding="utf-8"))["weights"]
    return d / name


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _write(path: Path, header: dict[str, Any], body: bytes) -> None:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


def weights_edit(name: str, what: str, change: Callable[[dict[str, Any], bytes], bytes]) -> None:
    def edit(d: Path) -> None:
        path = _weights(d)
        header, body = _read(path)
        body = change(header, body)
        _write(path, header, body)

    CASES[name] = (what, edit)


def _fill(value: float, dtype: str = "<f") -> Callable[[dict[str, Any], bytes], bytes]:
    def change(header: dict[str, Any], body: bytes) -> bytes:
        start, end = header["head.bias"]["data_offsets"]
        size = struct.calcsize(dtype)
        return body[:start] + struct.pack(dtype, value) * ((end - start) // size) + body[end:]

    return change


def _retype(dtype: str) -> Callable[[dict[str, Any], bytes], bytes]:
    def change(header: dict[str, Any], body: bytes) -> bytes:
        header["head.bias"]["dtype"] = dtype
        return body

    return change


def _reshape(header: dict[str, Any], body: bytes) -> bytes:
    header["head.bias"]["shape"] = [header["head.bias"]["shape"][0] - 1]
    start, end = header["head.bias"]["data_offsets"]
    header["head.bias"]["data_offsets"] = [start, end - 4]
    return body


def _drop(header: dict[str, Any], body: bytes) -> bytes:
    header.pop("head.bias")
    return body


def _extra(header: dict[str, Any], body: bytes) -> bytes:
    header["head.extra"] = {
        "dtype": "F32",
        "shape": [1],
        "data_offsets": [len(body), len(body) + 4],
    }
    return body + b"\0\0\0\0"


def _bad_offsets(header: dict[str, Any], body: bytes) -> bytes:
    header["head.bias"]["data_offsets"] = [0, 10**12]
    return body


def _negative_shape(header: dict[str, Any], body: bytes) -> bytes:
    header["head.bias"]["shape"] = [-26]
    return body


def _many_dims(header: dict[str, Any], body: bytes) -> bytes:
    header["head.bias"]["shape"] = [1] * 40
    return body


weights_edit("weights-nan", "NaN weights", _fill(float("nan")))
weights_edit("weights-inf", "infinite weights", _fill(float("inf")))
weights_edit("weights-1e38", "finite but huge (1e38) weights", _fill(1e38))
weights_edit("weights-float8", "float8 weights", _retype("F8_E4M3"))
weights_edit("weights-int32", "integer weights", _retype("I32"))
weights_edit("weights-unknown-dtype", "an unknown dtype", _retype("Q4"))
weights_edit("weights-wrong-shape", "a tensor one element short", _reshape)
weights_edit("weights-missing-tensor", "a tensor missing", _drop)
weights_edit("weights-extra-tensor", "an extra tensor", _extra)
weights_edit("weights-bad-offsets", "byte ranges beyond the file", _bad_offsets)
weights_edit("weights-negative-shape", "a negative dimension", _negative_shape)
weights_edit("weights-40-dims", "a 40-dimensional shape", _many_dims)


@case("weights-truncated", "a weights file cut short")
def _truncated(d: Path) -> None:
    path = _weights(d)
    path.write_bytes(path.read_bytes()[:100])


@case("weights-empty", "an empty weights file")
def _empty(d: Path) -> None:
    _weights(d).write_bytes(b"")


@case("weights-huge-header", "a header length of 2^60 bytes")
def _huge_header(d: Path) -> None:
    path = _weights(d)
    path.write_bytes(struct.pack("<Q", 2**60) + path.read_bytes()[8:])


@case("weights-header-not-json", "a header that is not JSON")
def _header_garbage(d: Path) -> None:
    path = _weights(d)
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    path.write_bytes(data[:8] + b"\xff" * n + data[8 + n :])


@case("weights-header-array", "a header that is a JSON array")
def _header_array(d: Path) -> None:
    path = _weights(d)
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    path.write_bytes(data[:8] + b"[" + b" " * (n - 2) + b"]" + data[8 + n :])


@case("weights-is-directory", "the weights file is a directory")
def _weights_dir(d: Path) -> None:
    path = _weights(d)
    path.unlink()
    path.mkdir()


@case("weights-symlink-out", "the weights file is a link out of the checkpoints folder")
def _weights_link(d: Path) -> None:
    path = _weights(d)
    outside = d.parent.parent / "outside-weights.safetensors"
    shutil.copy(path, outside)
    path.unlink()
    os.symlink(outside, path)


def plain_name(name: str) -> str:
    """`name` as a model name the service accepts (the library's rule, charlm.names)."""
    return names.servable_name(name)


def make_all(good: Path, root: Path) -> dict[str, str]:
    """Every case as `root/<name>`, made from the good checkpoint `good`."""
    root.mkdir(parents=True, exist_ok=True)
    made = {}
    for raw, (what, edit) in CASES.items():
        name = plain_name(raw)
        assert name not in made, name
        target = root / name
        shutil.copytree(good, target, ignore=shutil.ignore_patterns("*.png", ".lock"))
        edit(target)
        made[name] = what
    outside = root.parent / "outside-model"
    if not outside.exists():
        shutil.copytree(good, outside, ignore=shutil.ignore_patterns("*.png", ".lock"))
    os.symlink(outside, root / "dir-symlink-out")
    made["dir-symlink-out"] = "a model directory that is a link out of the checkpoints folder"
    return made
