"""Loading, saving and finding checkpoint directories.

`load` reads the manifest and the weights file's header and checks them against each
other (names, dtypes, and every shape computed from the model config) without reading
or allocating a weight; `Checkpoint.build_model` then reads the weights once, checks
that they are finite and bounded, and builds the model once. `save` writes new tensor
files under fresh names, then replaces the manifest atomically, then deletes the files
it no longer names; if any write fails, the files this save wrote are removed again and
the previous checkpoint is left exactly as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from charlm.checkpoint import tensors
from charlm.checkpoint.manifest import MANIFEST, Manifest
from charlm.checkpoint.resume import ResumeState
from charlm.errors import (
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    IncompatibleCheckpointError,
)
from charlm.model import CharRNN, ModelConfig
from charlm.train_config import TrainConfig
from charlm.vocab import Vocabulary

__all__ = ["Checkpoint", "exists", "load", "resolve", "save"]


@dataclass(frozen=True)
class Checkpoint:
    """A checked checkpoint: its manifest and where it is. Holds no weights."""

    path: Path
    manifest: Manifest
    label: str
    """How errors name this checkpoint (its path, or a served model's name)."""

    @property
    def model_config(self) -> ModelConfig:
        return self.manifest.model_config

    @property
    def vocab(self) -> Vocabulary:
        return self.manifest.vocab

    @property
    def train_config(self) -> TrainConfig:
        return self.manifest.train_config

    @property
    def summary(self) -> dict[str, Any]:
        return self.manifest.summary

    @property
    def resumable(self) -> bool:
        return self.manifest.resume is not None and self.manifest.resume_meta is not None

    def read_weights(self) -> dict[str, torch.Tensor]:
        """The best-validation weights, checked: names, dtypes, shapes, finite, bounded."""
        path = self.path / self.manifest.weights
        expected = self.model_config.parameter_shapes()
        with _named(self.label):
            tensors.check_weights(path, tensors.read_header(path), expected)
            weights = tensors.read_tensors(path)
            found = {k: (_dtype_name(v), tuple(v.shape)) for k, v in weights.items()}
            tensors.check_weights(path, found, expected)  # the file may have changed since `load`
            tensors.check_finite(path, weights)
        return weights

    def build_model(self, device: torch.device | str = "cpu") -> CharRNN:
        """A `CharRNN` holding the best-validation weights, in eval mode.

        The tensors read from the file become the model's parameters (`assign=True`), so
        the weights are held once; the freshly initialised ones are freed. (Building on
        PyTorch's meta device would skip that initialisation, but its first use imports
        about 800 modules: 70 MiB more for a server, measured.)
        """
        weights = {k: v.float() for k, v in self.read_weights().items()}
        model = CharRNN(self.model_config)
        model.load_state_dict(weights, assign=True)
        return model.to(device).eval()

    def load_resume(self) -> ResumeState:
        """The resume record saved with this checkpoint."""
        m = self.manifest
        if m.resume is None or m.resume_meta is None:
            raise IncompatibleCheckpointError(
                f"{self.label}: has no resume state (it was not written by training)"
            )
        with _named(self.label):
            saved = tensors.read_tensors(self.path / m.resume)
            return ResumeState.from_disk(saved, m.resume_meta)


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


def load(path: str | Path, *, label: str | None = None) -> Checkpoint:
    """Read and check the checkpoint in directory `path` (see the module docstring).

    Errors name it by `label` (default: the path as given).
    """
    directory = Path(path)
    label = str(directory) if label is None else label
    if not (directory / MANIFEST).is_file():
        raise CheckpointNotFoundError(f"no checkpoint at {label} ({MANIFEST} is missing)")
    with _named(label):
        manifest = Manifest.read(directory / MANIFEST)
        weights = directory / manifest.weights
        tensors.check_weights(
            weights, tensors.read_header(weights), manifest.model_config.parameter_shapes()
        )
    return Checkpoint(directory, manifest, label)


def save(
    directory: str | Path,
    *,
    model_config: ModelConfig,
    train_config: TrainConfig,
    vocab: Vocabulary,
    summary: Mapping[str, Any],
    weights: Mapping[str, torch.Tensor] | None,
    resume: ResumeState | None = None,
) -> Path:
    """Write a checkpoint into `directory` atomically (see the module docstring).

    `weights` are the model weights inference should use; None keeps the weights file
    of the checkpoint already in `directory`. `resume` is what `--resume` needs; None
    drops any earlier resume state.
    """
    if len(vocab) != model_config.vocab_size:
        raise ConfigError(
            f"vocabulary has {len(vocab)} characters, the model config {model_config.vocab_size}"
        )
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    written: list[str] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if weights is None:
            if not manifest_path.is_file():
                raise CheckpointError(f"{directory}: no earlier weights to keep")
            weights_file = Manifest.read(manifest_path).weights
        else:
            weights_file = tensors.write_tensors(directory, "weights", _step(summary), weights)
            written.append(weights_file)
        resume_file = None
        if resume is not None:
            resume_file = tensors.write_tensors(
                directory, "resume", _step(summary), resume.to_tensors()
            )
            written.append(resume_file)
        manifest = Manifest(
            model_config=model_config,
            train_config=train_config,
            vocab=vocab,
            summary=dict(summary),
            weights=weights_file,
            resume=resume_file,
            resume_meta=resume.meta() if resume is not None else None,
        )
        manifest.write(manifest_path)
    except OSError as e:
        _remove(directory, written)
        raise CheckpointError(f"{directory}: could not save ({e.strerror or e})") from e
    except CheckpointError:
        _remove(directory, written)
        raise
    tensors.remove_unreferenced(directory, {weights_file, resume_file})
    return directory


def _step(summary: Mapping[str, Any]) -> int:
    step = summary.get("step", 0)
    return step if isinstance(step, int) and step >= 0 else 0


def _remove(directory: Path, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(OSError):
            (directory / name).unlink()


def _dtype_name(t: torch.Tensor) -> str:
    return {
        torch.float32: "F32",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.float64: "F64",
    }.get(t.dtype, str(t.dtype))


@contextlib.contextmanager
def _named(label: str) -> Any:
    """Prefix the file-level errors raised inside with the checkpoint's label."""
    try:
        yield
    except IncompatibleCheckpointError as e:
        raise IncompatibleCheckpointError(f"{label}/{e}") from e
