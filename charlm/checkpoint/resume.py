"""The resume record: everything `--resume` needs to continue a run exactly.

`Progress` is the run's position and its best result so far; `ResumeState` adds the
tensors: latest weights, the optimiser's per-parameter state, the LSTM state carried
between windows, and both random generators. This module alone knows how they are laid
out on disk: tensors under the keys `model.<name>`, `optim.<index>.<slot>`, `state.h`,
`state.c`, `rng.torch` and `rng.data` in the resume safetensors file, and the progress
fields (plus `has_state`) as the manifest's `resume_meta` object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import torch

from charlm.errors import IncompatibleCheckpointError

__all__ = ["Progress", "ResumeState"]

State = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Progress:
    """Where a run stands; what a resume restores besides the tensors."""

    step: int = 0
    epoch: int = 0
    offset: int = 0
    """Start of the current epoch's first window."""
    window: int = 0
    """Index of the next window within the epoch."""
    elapsed_s: float = 0.0
    chars_seen: int = 0
    train_loss: float = math.nan
    val_loss: float = math.nan
    best_val_loss: float = math.inf
    best_step: int = 0
    evals_since_best: int = 0

    def to_meta(self) -> dict[str, Any]:
        """As JSON: every field, non-finite numbers as null."""
        return {f.name: _json_number(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Progress:
        """Read `to_meta`'s output back; a null number is the field's default."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = meta.get(f.name)
            if f.type == "float":
                if value is None:
                    continue
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise IncompatibleCheckpointError(f"resume_meta {f.name} is not a number")
                values[f.name] = float(value)
            else:
                if type(value) is not int or value < 0:
                    raise IncompatibleCheckpointError(
                        f"resume_meta {f.name} must be an integer >= 0"
                    )
                values[f.name] = value
        return cls(**values)


@dataclass
class ResumeState:
    """The resume record of one step of a run."""

    progress: Progress
    model: dict[str, torch.Tensor]
    """The latest weights (not the best ones: those are the checkpoint's weights file)."""
    optimizer: dict[int, dict[str, torch.Tensor]]
    """The optimiser's `state_dict()["state"]`: parameter index -> slot -> tensor."""
    carried: State | None
    """The LSTM state carried into the next window, or None at an epoch start."""
    rng: torch.Tensor
    """torch's global generator state (dropout)."""
    data_rng: torch.Tensor
    """The data generator's state (window offsets, state resets)."""

    def to_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"model.{k}": v for k, v in self.model.items()}
        for index, slots in self.optimizer.items():
            for slot, value in slots.items():
                tensors[f"optim.{index}.{slot}"] = torch.as_tensor(value)
        if self.carried is not None:
            tensors["state.h"], tensors["state.c"] = self.carried
        tensors["rng.torch"] = self.rng
        tensors["rng.data"] = self.data_rng
        return tensors

    def meta(self) -> dict[str, Any]:
        return {**self.progress.to_meta(), "has_state": self.carried is not None}

    @classmethod
    def from_disk(cls, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> ResumeState:
        model: dict[str, torch.Tensor] = {}
        optimizer: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("model."):
                model[key[len("model.") :]] = value
            elif key.startswith("optim."):
                parts = key.split(".", 2)
                if len(parts) != 3 or not parts[1].isdigit():
                    raise IncompatibleCheckpointError(f"resume tensor {key!r} is not ours")
                optimizer.setdefault(int(parts[1]), {})[parts[2]] = value
        try:
            rng, data_rng = tensors["rng.torch"], tensors["rng.data"]
            carried = (tensors["state.h"], tensors["state.c"]) if meta.get("has_state") else None
        except KeyError as e:
            raise IncompatibleCheckpointError(f"resume tensors lack {e.args[0]}") from e
        return cls(Progress.from_meta(meta), model, optimizer, carried, rng, data_rng)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
