"""checkpoint.json: read with every size and structure checked, written atomically.

A manifest comes from disk, and a checkpoints folder may hold files from anywhere, so
reading one checks everything before anything is built from it: that it is a regular
file and its size, its nesting depth before it is parsed (both with `charlm.files`),
JSON without huge numbers, strings that are valid
Unicode (no lone surrogates), integers within 64 bits, finite numbers, the format
version, the model config's bounds (`ModelConfig`), the training config's
(`TrainConfig`), the vocabulary, and the names of the
tensor files. The result is a typed `Manifest`; nothing downstream sees raw JSON.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charlm import files
from charlm.checkpoint.tensors import atomic_write_bytes
from charlm.errors import CharLMError, IncompatibleCheckpointError
from charlm.model import ModelConfig
from charlm.train_config import TrainConfig
from charlm.vocab import Vocabulary

__all__ = ["FORMAT_VERSION", "MANIFEST", "MAX_DEPTH", "MAX_MANIFEST_BYTES", "Manifest"]

FORMAT_VERSION = 1
MANIFEST = "checkpoint.json"
MAX_MANIFEST_BYTES = 64 * 2**20
"""A vocabulary of every Unicode code point fits in about 12 MB."""
MAX_DEPTH = 16
"""Deepest nesting of JSON objects and arrays a manifest may have (charlm writes 3)."""
_MANIFESTS = files.FileKind("manifests", MAX_MANIFEST_BYTES, IncompatibleCheckpointError)
_REQUIRED = ("format_version", "model_config", "train_config", "vocab", "summary", "weights")


@dataclass(frozen=True)
class Manifest:
    model_config: ModelConfig
    train_config: TrainConfig
    vocab: Vocabulary
    summary: dict[str, Any]
    weights: str
    """File name of the best-validation weights."""
    resume: str | None = None
    """File name of the resume tensors, if the run can be resumed."""
    resume_meta: dict[str, Any] | None = None

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read and check `path`; errors name the file as `path.name`."""
        return cls.from_json(_parse(path), path.name)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> Manifest:
        def bad(reason: str) -> IncompatibleCheckpointError:
            return IncompatibleCheckpointError(f"{where}: {reason}")

        version = data.get("format_version")
        if type(version) is not int or version != FORMAT_VERSION:
            raise bad(
                f"format_version is {_short(version)}, this charlm reads version "
                f"{FORMAT_VERSION}; retrain, or use the charlm release that wrote it"
            )
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise bad(f"missing keys {', '.join(missing)}")
        try:
            model_config = ModelConfig.from_dict(data["model_config"])
            train_config = TrainConfig.from_dict(data["train_config"])
            vocab = Vocabulary.from_list(data["vocab"])
        except CharLMError as e:
            raise bad(str(e)) from e
        if len(vocab) != model_config.vocab_size:
            raise bad(
                f"vocabulary has {len(vocab)} characters but the model expects "
                f"{model_config.vocab_size}"
            )
        if not isinstance(data["summary"], dict):
            raise bad("'summary' must be a JSON object")
        resume_meta = data.get("resume_meta")
        if resume_meta is not None and not isinstance(resume_meta, dict):
            raise bad("'resume_meta' must be a JSON object")
        resume = data.get("resume")
        return cls(
            model_config=model_config,
            train_config=train_config,
            vocab=vocab,
            summary=data["summary"],
            weights=_file_name(data["weights"], "weights", bad),
            resume=_file_name(resume, "resume", bad) if resume else None,
            resume_meta=resume_meta,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "model_config": self.model_config.to_dict(),
            "train_config": self.train_config.to_dict(),
            "vocab": self.vocab.to_list(),
            "summary": dict(self.summary),
            "weights": self.weights,
            "resume": self.resume,
            "resume_meta": self.resume_meta,
        }

    def write(self, path: Path) -> None:
        """Replace `path` atomically with this manifest."""
        text = json.dumps(self.to_json(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        atomic_write_bytes(path, text.encode("utf-8"))


def _parse(path: Path) -> dict[str, Any]:
    def bad(reason: str) -> IncompatibleCheckpointError:
        return IncompatibleCheckpointError(f"{path.name}: {reason}")

    raw = files.read_regular(path, path.name, _MANIFESTS)
    try:
        data = files.loads_json(
            raw.decode("utf-8"),
            path.name,
            _MANIFESTS,
            MAX_DEPTH,
            parse_constant=_refuse_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except UnicodeDecodeError as e:
        raise bad(f"is not UTF-8 (byte {e.start})") from e
    except ValueError as e:  # JSONDecodeError and the number checks below
        raise bad(f"is not a readable JSON manifest ({_short_text(str(e))})") from e
    if not isinstance(data, dict):
        raise bad("must be a JSON object")
    problem = _structure_problem(data)
    if problem:
        raise bad(problem)
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _bounded_int(text: str) -> int:
    if len(text) > 20 or not -(2**63) <= (value := int(text)) < 2**63:
        raise ValueError(f"integer of {len(text)} digits is out of range")
    return value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {_short_text(text)} is out of range")
    return value


def _structure_problem(data: object) -> str | None:
    """What is wrong with `data`'s strings, or None (iterative: no recursion; its depth
    was checked before it was parsed)."""
    stack: list[object] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                if not _valid_text(k):
                    return "holds a key that is not valid Unicode (a lone surrogate)"
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and not _valid_text(value):
            return "holds a string that is not valid Unicode (a lone surrogate)"
    return None


def _valid_text(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _file_name(name: object, key: str, bad: Any) -> str:
    ok = (
        isinstance(name, str)
        and name.endswith(".safetensors")
        and Path(name).name == name
        and not name.startswith(".")
        and len(name) <= 255
    )
    if not ok:
        raise bad(f"{key!r} must name a .safetensors file in the checkpoint directory")
    return str(name)


def _short(value: object) -> str:
    return _short_text(repr(value))


def _short_text(text: str, limit: int = 80) -> str:
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."
