"""Where and how a run computes: the device, bfloat16 where it pays, and CPU threads.

Every choice about hardware is made here, once per run (a training run, a loaded model,
a server process), and handed down as a `Runtime`; no other module asks torch what the
machine can do.

- Device: 'auto' is CUDA when available, else the CPU.
- bf16 training (`precision`): 'fp32', 'bf16' (autocast; weights and optimiser stay
  float32), or 'auto': on a CPU, bf16 where it computes it natively and the model has at
  least `BF16_MIN_HIDDEN` units (below that it gains nothing measurable); on a CUDA GPU,
  bf16 wherever the GPU supports it.
- bf16 generation steps: on a CPU where oneDNN's matrix-vector kernel takes bf16, natively
  or emulated on AVX-512 (a step is bound by reading its weights, so half the bytes pays
  even emulated: BENCHMARKS.md, "Greedy generation at batch 1").
- int8 generation steps: only on a CPU, with torch's FBGEMM quantised kernels.
- CPU threads: see `choose_threads`, whose rule comes from `bench/threads.py`.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from charlm._config import check_choice, check_int
from charlm.errors import ConfigError

__all__ = [
    "BF16_MIN_HIDDEN",
    "PRECISIONS",
    "Runtime",
    "bf16_native",
    "bf16_steps_supported",
    "bf16_supported",
    "choose_threads",
    "free_cores",
    "int8_steps_supported",
    "onednn_linear",
    "pick_device",
    "release_freed_memory",
    "require_bf16_steps",
    "require_int8_steps",
    "train_in_bf16",
]

PRECISIONS = ("auto", "fp32", "bf16")
BF16_MIN_HIDDEN = 256
"""Below this hidden size bf16 autocast gains nothing measurable on a CPU."""

Linear = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class Runtime:
    """The hardware choices of one run."""

    device: torch.device
    threads: int
    bf16: bool = False
    """Train under bf16 autocast."""

    @classmethod
    def choose(
        cls,
        device: str | torch.device = "auto",
        *,
        threads: int | None = None,
        hidden_size: int | None = None,
        precision: str = "fp32",
        cell: str = "lstm",
    ) -> Runtime:
        """Pick the device, threads and precision, and apply the thread count to torch.

        `hidden_size` and `cell` are the model's, for the bf16 rule.
        """
        dev = pick_device(device)
        n = choose_threads(threads)
        torch.set_num_threads(n)
        bf16 = train_in_bf16(precision, dev, hidden_size or 0, cell)
        return cls(dev, n, bf16)


def pick_device(name: str | torch.device) -> torch.device:
    """'auto' is CUDA when available, else the CPU."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but CUDA is not available here")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"device {name!r}: {e}") from e


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` computes in bf16 at all: natively or, on a CPU with AVX-512 but
    without bf16 instructions, emulated by oneDNN."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def bf16_native(device: torch.device) -> bool:
    """Whether `device` has bf16 arithmetic in hardware: a CUDA GPU that supports bf16,
    or a CPU with AVX-512 BF16 or AMX instructions. Elsewhere oneDNN converts to and from
    float32 around float32 arithmetic, which costs more than it saves: on an AVX-512
    Xeon without either, a 2 x 256 training step under bf16 autocast took 2.2x the
    float32 step (BENCHMARKS.md, "The cost of dropout in a training step")."""
    if device.type != "cpu":
        return bf16_supported(device)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    native = any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    return native and bf16_supported(device)


def train_in_bf16(
    precision: str, device: torch.device, hidden_size: int, cell: str = "lstm"
) -> bool:
    """Whether a run with `precision` trains under bf16 autocast on `device`.

    On the CPU "auto" chooses bf16 only where the CPU has it natively (`bf16_native`),
    for LSTMs of `BF16_MIN_HIDDEN` units or more,
    where it was measured to pay (under CPU autocast PyTorch keeps a GRU in float32
    anyway); on a CUDA GPU that supports bf16 it always chooses it.
    """
    check_choice("precision", precision, PRECISIONS)
    if precision == "fp32":
        return False
    if precision == "bf16":
        if not bf16_supported(device):
            raise ConfigError(f"precision bf16 asked for, but {device} cannot compute in bf16")
        return True
    if device.type == "cuda":  # a GPU with bf16 has the tensor cores that autocast feeds
        return bf16_native(device)
    return bf16_native(device) and cell == "lstm" and hidden_size >= BF16_MIN_HIDDEN


def onednn_linear() -> tuple[Callable[[torch.Tensor], torch.Tensor], Linear] | None:
    """oneDNN's prepacked matrix-vector product (pack, run), if this torch build has it
    and it gives the right answer; None otherwise."""
    try:
        ops = torch.ops.mkldnn
        pack: Callable[[torch.Tensor], torch.Tensor] = lambda w: ops._reorder_linear_weight(w, 1)  # noqa: E731
        run: Linear = lambda x, w, b: ops._linear_pointwise(x, w, b, "none", [], "")  # noqa: E731
        w, b, x = torch.randn(8, 4), torch.randn(8), torch.randn(1, 4)
        if torch.allclose(run(x, pack(w), b), F.linear(x, w, b), atol=1e-5):
            return pack, run
    except (AttributeError, RuntimeError):
        pass
    return None


def bf16_steps_supported(device: torch.device | None = None) -> bool:
    """Whether generation can step with bfloat16 weights on `device` (the CPU only)."""
    if device is not None and device.type != "cpu":
        return False
    try:
        return onednn_linear() is not None and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def int8_steps_supported(device: torch.device | None = None) -> bool:
    """Whether generation can step with int8 weights on `device`: the CPU, with torch's
    FBGEMM quantised kernels (x86-64 builds)."""
    if device is not None and device.type != "cpu":
        return False
    return "fbgemm" in torch.backends.quantized.supported_engines


def require_int8_steps(device: torch.device | None = None) -> None:
    """Raise `ConfigError` unless generation can step with int8 weights on `device`."""
    if not int8_steps_supported(device):
        raise ConfigError("int8 stepping needs a CPU and a torch build with FBGEMM (x86-64)")


def release_freed_memory() -> None:
    """Give memory that has been freed back to the operating system, where the C library
    is glibc (`malloc_trim`); elsewhere nothing happens.

    Loading a model and preparing its stepper free large temporaries; glibc keeps such
    memory in its heaps for reuse, so a long-running server would otherwise hold it.
    """
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim: Any = None


def require_bf16_steps(device: torch.device | None = None) -> None:
    """Raise `ConfigError` unless generation can step with bfloat16 weights on `device`."""
    if not bf16_steps_supported(device):
        raise ConfigError("bf16 stepping needs a CPU whose oneDNN computes bfloat16 (AVX-512)")


def free_cores(window_s: float = 0.1) -> int:
    """Cores this process may use that other work is not using now (at least 1).

    Read from the kernel's idle counters of the cores in this process's affinity mask
    over `window_s` (/proc/stat), falling back to the cores less the 1-minute load
    average where there is no /proc. Cached for a few seconds.
    """
    now = time.monotonic()
    if _free_cache and now - _free_cache[0][0] < _FREE_CACHE_S:
        return _free_cache[0][1]
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    n = len(cores) or os.cpu_count() or 1
    free: float
    first = _idle_counters(cores)
    if first is not None:
        time.sleep(window_s)
        second = _idle_counters(cores)
        assert second is not None
        idle, total = second[0] - first[0], second[1] - first[1]
        free = n * idle / total if total > 0 else n
    else:
        try:
            free = n - os.getloadavg()[0]
        except OSError:
            free = n
    result = max(1, min(n, round(free)))
    _free_cache[:] = [(now, result)]
    return result


_FREE_CACHE_S = 5.0
_free_cache: list[tuple[float, int]] = []


def _idle_counters(cores: list[int]) -> tuple[int, int] | None:
    """(idle, total) jiffies summed over `cores` from /proc/stat, or None."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cores}
    idle = total = 0
    for line in lines:
        name, *values = line.split()
        if name in wanted:
            counts = [int(v) for v in values[:8]]
            idle += counts[3] + counts[4]  # idle + iowait
            total += sum(counts)
    return (idle, total) if total else None


def choose_threads(requested: int | None) -> int:
    """CPU threads for a run: `requested` if given, else one per free core.

    Measured with real `charlm train` runs on a 2-core machine (bench/threads.py,
    BENCHMARKS.md): on a quiet machine two threads trained 1.1x (the tiny preset) to
    2.0x (2 x 512) as fast as one; with both cores taken by other work, two threads ran
    at 0.13x (tiny) to 0.51x (2 x 512) of one thread's speed: GNU OpenMP's threads spin
    while they wait for each other, and a spinning thread whose partner has no core
    wastes its time slice. So the count follows the cores that are free when the run
    starts (`free_cores`): all of them on a quiet machine, one on a busy one. Setting
    OMP_WAIT_POLICY=PASSIVE instead helped only the largest model on a busy machine and
    made every model slower on a quiet one, so the policy is left alone. Nor does the
    rule depend on the model: the measurements gave no size below which one thread wins.
    """
    if requested is not None:
        return check_int("threads", requested, 1, 1024)
    return free_cores()
