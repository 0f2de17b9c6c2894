"""The only place that reads and writes checkpoints.

A checkpoint is a directory:

    checkpoint.json                  the manifest: format version, model and training
                                     configs, vocabulary, training summary, and the
                                     names of the two tensor files below
    weights-<step>-<tag>.safetensors the best-validation model weights (what inference loads)
    resume-<step>-<tag>.safetensors  latest weights, optimiser state, carried LSTM state
                                     and RNG states: what `--resume` needs
    metrics.jsonl                    the training log, one JSON object per line

Tensors are stored with safetensors and everything else as JSON, so loading a
checkpoint never unpickles anything. A save writes new tensor files under fresh names
first and then atomically replaces `checkpoint.json` (temp file, fsync, rename); only
then are files no longer named by the manifest deleted. A crash at any point therefore
leaves a manifest that names complete files: the previous checkpoint or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from charlm.errors import (
    CharLMError,
    CheckpointError,
    CheckpointNotFoundError,
    IncompatibleCheckpointError,
)
from charlm.model import CharLSTM, ModelConfig
from charlm.vocab import Vocabulary

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "Checkpoint",
    "exists",
    "load",
    "resolve",
    "save",
]

FORMAT_VERSION = 1
MANIFEST = "checkpoint.json"
_REQUIRED = ("format_version", "model_config", "train_config", "vocab", "summary", "weights")


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: configs, vocabulary, summary and best-validation weights."""

    path: Path
    model_config: ModelConfig
    train_config: dict[str, Any]
    vocab: Vocabulary
    summary: dict[str, Any]
    weights: dict[str, torch.Tensor] = field(repr=False)
    resume_file: str | None = None
    resume_meta: dict[str, Any] | None = None

    def build_model(self, device: torch.device | str = "cpu") -> CharLSTM:
        """A `CharLSTM` holding the best-validation weights, in eval mode."""
        model = CharLSTM(self.model_config)
        _load_into(model, self.weights, self.path / MANIFEST)
        return model.to(device).eval()

    def load_resume(self) -> dict[str, torch.Tensor]:
        """The tensors saved for `--resume`."""
        if self.resume_file is None:
            raise IncompatibleCheckpointError(
                f"{self.path / MANIFEST}: has no resume state (it was not written by training)"
            )
        return _read_tensors(self.path / self.resume_file)


def resolve(name_or_path: str | Path, checkpoints_dir: str | Path = "checkpoints") -> Path:
    """The checkpoint directory for a path or a name under `checkpoints_dir`."""
    p = Path(name_or_path)
    if (p / MANIFEST).is_file():
        return p
    if p.name == MANIFEST and p.is_file():
        return p.parent
    candidate = Path(checkpoints_dir) / str(name_or_path)
    if (candidate / MANIFEST).is_file():
        return candidate
    tried = [str(p)] if str(p) == str(candidate) else [str(p), str(candidate)]
    raise CheckpointNotFoundError(
        f"no checkpoint at {' or '.join(tried)} (a checkpoint is a directory holding "
        f"{MANIFEST}; train one with `charlm train CORPUS`)"
    )


def exists(directory: str | Path) -> bool:
    return (Path(directory) / MANIFEST).is_file()


def load(path: str | Path) -> Checkpoint:
    """Read and validate the checkpoint in directory `path`."""
    directory = Path(path)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointNotFoundError(f"no checkpoint at {directory} ({MANIFEST} is missing)")
    manifest = _read_manifest(manifest_path)

    def bad(reason: str) -> IncompatibleCheckpointError:
        return IncompatibleCheckpointError(f"{manifest_path}: {reason}")

    try:
        model_config = ModelConfig.from_dict(manifest["model_config"])
        vocab = Vocabulary.from_list(manifest["vocab"])
    except CharLMError as e:
        raise bad(str(e)) from e
    if len(vocab) != model_config.vocab_size:
        raise bad(
            f"vocabulary has {len(vocab)} characters but the model expects "
            f"{model_config.vocab_size}"
        )
    for key in ("train_config", "summary"):
        if not isinstance(manifest[key], dict):
            raise bad(f"{key!r} must be a JSON object")
    weights_file = _file_name(manifest, "weights", bad)
    resume_file = _file_name(manifest, "resume", bad) if manifest.get("resume") else None
    weights = _read_tensors(directory / weights_file)
    _load_into(CharLSTM(model_config), weights, directory / weights_file)
    resume_meta = manifest.get("resume_meta")
    if resume_meta is not None and not isinstance(resume_meta, dict):
        raise bad("'resume_meta' must be a JSON object")
    return Checkpoint(
        path=directory,
        model_config=model_config,
        train_config=manifest["train_config"],
        vocab=vocab,
        summary=manifest["summary"],
        weights=weights,
        resume_file=resume_file,
        resume_meta=resume_meta,
    )


def save(
    directory: str | Path,
    *,
    model_config: ModelConfig,
    train_config: Mapping[str, Any],
    vocab: Vocabulary,
    summary: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor] | None,
    resume: Mapping[str, torch.Tensor] | None = None,
    resume_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint into `directory` atomically (see the module docstring).

    `weights` are the model weights inference should use; None keeps the weights file
    of the checkpoint already in `directory`. `resume` tensors and `resume_meta` are
    what resuming needs; None drops any earlier resume state.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / MANIFEST
    step = int(summary.get("step", 0))
    if weights is None:
        if not manifest_path.is_file():
            raise CheckpointError(f"{directory}: no earlier weights to keep")
        weights_file = _read_manifest(manifest_path)["weights"]
    else:
        weights_file = _write_tensors(directory, "weights", step, weights)
    resume_file = _write_tensors(directory, "resume", step, resume) if resume else None
    manifest = {
        "format_version": FORMAT_VERSION,
        "model_config": model_config.to_dict(),
        "train_config": dict(train_config),
        "vocab": vocab.to_list(),
        "summary": dict(summary),
        "weights": weights_file,
        "resume": resume_file,
        "resume_meta": dict(resume_meta) if resume_meta is not None else None,
    }
    text = json.dumps(manifest, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    _atomic_write_bytes(manifest_path, text.encode("utf-8"))
    _remove_unreferenced(directory, {weights_file, resume_file})
    return directory


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IncompatibleCheckpointError(f"{path}: not a readable JSON manifest ({e})") from e
    if not isinstance(manifest, dict):
        raise IncompatibleCheckpointError(f"{path}: manifest must be a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IncompatibleCheckpointError(
            f"{path}: format_version is {version!r}, this charlm reads version "
            f"{FORMAT_VERSION}; retrain, or use the charlm release that wrote it"
        )
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise IncompatibleCheckpointError(f"{path}: missing keys {', '.join(missing)}")
    return manifest


def _file_name(manifest: Mapping[str, Any], key: str, bad: Any) -> str:
    name = manifest[key]
    if not isinstance(name, str) or not name.endswith(".safetensors") or Path(name).name != name:
        raise bad(f"{key!r} must name a .safetensors file in the checkpoint directory")
    return name


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise IncompatibleCheckpointError(f"{path}: tensor file is missing")
    try:
        return dict(load_file(str(path)))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise IncompatibleCheckpointError(f"{path}: unreadable tensor file ({e})") from e


def _load_into(model: CharLSTM, weights: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    if missing or extra:
        raise IncompatibleCheckpointError(
            f"{path}: weights do not match the model config "
            f"(missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})"
        )
    for name, tensor in expected.items():
        got = weights[name]
        if got.shape != tensor.shape or not got.dtype.is_floating_point:
            raise IncompatibleCheckpointError(
                f"{path}: tensor {name} has shape {tuple(got.shape)} ({got.dtype}), "
                f"the model config needs {tuple(tensor.shape)}"
            )
        if not bool(torch.isfinite(got).all()):
            raise IncompatibleCheckpointError(f"{path}: tensor {name} holds NaN or infinity")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in weights.items()})


def _write_tensors(
    directory: Path, kind: str, step: int, tensors: Mapping[str, torch.Tensor]
) -> str:
    name = f"{kind}-{step:08d}-{secrets.token_hex(3)}.safetensors"
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    tmp = directory / f".{name}.tmp"
    try:
        save_file(plain, str(tmp), metadata={"charlm_format": str(FORMAT_VERSION)})
        os.chmod(tmp, 0o644)  # as readable as the manifest beside it
        _fsync(tmp)
        os.replace(tmp, directory / name)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise CheckpointError(f"{directory}: could not write {name} ({e})") from e
    return name


def _atomic_write_bytes(path: Path, data: bytes) -> None:
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
        raise CheckpointError(f"{path}: could not write it ({e})") from e
    _fsync_dir(path.parent)


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


def _remove_unreferenced(directory: Path, keep: set[str | None]) -> None:
    for p in directory.iterdir():
        ours = p.suffix == ".safetensors" and p.name.startswith(("weights-", "resume-"))
        stale_tmp = p.name.startswith(".") and p.name.endswith(".tmp")
        if (ours and p.name not in keep) or stale_tmp:
            with contextlib.suppress(OSError):
                p.unlink()
