"""Data-parallel training over several processes: torch.distributed, as set up by torchrun.

`Cluster.from_env()` reads the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR/PORT) and joins the process group: gloo on the CPU, NCCL
on CUDA. Without them, or with one process, it is `Cluster.single()` and every call
below is a no-op, so the one-process path is unchanged.

What the ranks share, and when (the trainer calls these; this module knows nothing of
models beyond wrapping one in DistributedDataParallel):
- every step: the gradients (inside DDP's backward), then one all-reduce of the step's
  loss (averaged over the ranks) and of rank 0's time-budget reading, so that all
  ranks log the global loss and stop on the same step;
- at every evaluation: the carried LSTM state of every rank, gathered for rank 0's
  checkpoint (which is then the same as a one-process run's), and rank 0's decision
  to stop (target loss, patience).

A collective that a dead or stuck rank never joins fails after `timeout_s` seconds;
under torchrun a rank that dies is noticed by the launcher sooner, which ends the
others.

`close()` must really end the process group before the interpreter shuts down. gloo's
worker threads drop each finished collective's tensors after the caller has moved on;
one that does so while the interpreter is finalising needs the GIL it can no longer
take, and the process aborts ("terminate called without an active exception", SIGABRT;
about one run in three on a busy 2-core machine). Two things kept the group alive past
`destroy_process_group`: `torch.distributed.nn`, which DDP imports on first use, binds
the group of the moment as the default argument of ten functions, so it is imported
here before the group exists; and the DDP wrapper's reference cycles, collected in
`close()` before the group is destroyed.
"""

from __future__ import annotations

import datetime
import gc
import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from charlm.errors import ConfigError
from charlm.model import CharRNN, State

__all__ = ["DEFAULT_TIMEOUT_S", "Cluster", "launched"]

DEFAULT_TIMEOUT_S = 300.0
"""How long a collective waits for a rank that does not answer."""


def launched() -> bool:
    """Whether this process is one of several started by torchrun."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


@dataclass(frozen=True)
class Cluster:
    """This process's place among the ranks of a data-parallel run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def single(cls) -> Cluster:
        return cls()

    @classmethod
    def from_env(cls, device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> Cluster:
        """Join torchrun's process group (once per process), or a one-process cluster."""
        if not launched():
            return cls.single()
        try:
            env = {k: int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        except (KeyError, ValueError) as e:
            raise ConfigError(f"torchrun's environment is incomplete or malformed ({e})") from e
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"]))
        if not dist.is_initialized():
            # before the group exists: imported later, it would hold the group for good
            importlib.import_module("torch.distributed.nn")
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                torch.cuda.set_device(env["LOCAL_RANK"])
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        return cls(env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], local_world)

    @property
    def main(self) -> bool:
        """Rank 0: the one that evaluates and writes checkpoints, logs and plots."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The device of this rank: its own GPU on CUDA (cuda:LOCAL_RANK)."""
        if self.world > 1 and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: CharRNN) -> torch.nn.Module:
        """The module to run training steps through: DDP, which averages the gradients
        over the ranks during backward, or the model itself for one process."""
        if self.world == 1:
            return model
        device = next(model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def step_agreement(self, loss: float, budget_used: float) -> tuple[float, float]:
        """The loss averaged over the ranks, and rank 0's share of the time budget."""
        if self.world == 1:
            return loss, budget_used
        device = torch.device("cuda", self.local_rank) if self._nccl() else None
        t = torch.tensor([loss, budget_used if self.main else 0.0], dtype=torch.float64)
        t = t.to(device) if device is not None else t
        dist.all_reduce(t)
        total, used = t.tolist()
        return total / self.world, used

    def gather_state(self, state: State | None) -> State | None:
        """Every rank's carried state, joined along the batch (rank 0's streams first):
        the state a one-process run would carry. None when it is an epoch start."""
        if self.world == 1 or state is None:
            return state
        out = []
        for t in state:
            parts = [torch.empty_like(t) for _ in range(self.world)]
            dist.all_gather(parts, t.contiguous())
            out.append(torch.cat(parts, dim=1))
        return out[0], out[1]

    def agree(self, decision: str) -> str:
        """Rank 0's `decision`, on every rank."""
        if self.world == 1:
            return decision
        box: list[object] = [decision]
        dist.broadcast_object_list(box, src=0)
        return str(box[0])

    def close(self) -> None:
        """End the process group, and with it gloo's threads: call it once nothing
        holds the wrapped model (its reference cycles are collected here)."""
        if self.world > 1 and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()

    def _nccl(self) -> bool:
        return dist.get_backend() == "nccl"
