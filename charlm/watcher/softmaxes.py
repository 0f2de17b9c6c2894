"""What the watcher measures of the softmaxes a loop computes: every softmax,
log-softmax and cross-entropy taken while gradients are on (torch's functions and
methods, and so every module built on them, wrapped while any watcher listens): where
it was called, how many classes, the largest |value| fed to it, and whether that came
out of a matrix product (a linear layer) or not (a tanh, an LSTM's output)."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from charlm.watcher.probes import read_scalars

__all__ = ["SoftmaxCall", "Softmaxes", "skip_frames_in"]


@dataclass
class SoftmaxCall:
    """The softmaxes computed at one place of the loop, during one step."""

    where: str
    classes: int
    largest: float  # the largest |value| fed to it this step
    projected: bool = False  # its input came out of a matrix product (a linear layer)


class Softmaxes:
    """Every softmax, log-softmax and cross-entropy computed while gradients are on."""

    _lock = threading.Lock()
    _listeners: ClassVar[list[Softmaxes]] = []
    _originals: ClassVar[list[tuple[Any, str, Any]]] = []
    _inside = threading.local()

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, list[torch.Tensor]]] = {}
        self._projected: set[str] = set()

    # -- what each watcher sees ---------------------------------------------------

    def collect(self) -> list[SoftmaxCall]:
        """The places softmaxes were computed since the last call, with their largest
        input."""
        out = []
        for where, (classes, values) in self._pending.items():
            largest = max(read_scalars(values))
            out.append(SoftmaxCall(where, classes, largest, where in self._projected))
        self._pending = {}
        return out

    def _note(self, where: str, classes: int, x: torch.Tensor) -> None:
        entry = self._pending.get(where)
        value = x.detach().abs().amax() if x.numel() else torch.zeros(())
        if entry is None:
            self._pending[where] = (classes, [value])
            if _projected(x):
                self._projected.add(where)
        elif len(entry[1]) < 4096:
            entry[1].append(value)
        else:  # many calls in one step: fold them
            entry[1][:] = [torch.stack([v.float() for v in entry[1]]).amax()]

    # -- the functions watched, while any watcher listens ----------------------------

    def start(self) -> None:
        with self._lock:
            if not self._listeners:
                _patch()
            self._listeners.append(self)

    def stop(self) -> None:
        with self._lock:
            if self in self._listeners:
                self._listeners.remove(self)
            if not self._listeners:
                _unpatch()


_PRODUCTS = ("Addmm", "Mm", "Bmm", "Baddbmm", "Addbmm", "Addmv", "Mv", "Matmul", "Linear")
"""Autograd nodes of a matrix product: what a linear layer leaves."""
_PASSING = (
    "Add", "Sub", "View", "Reshape", "UnsafeView", "Select", "Slice", "Transpose", "Permute",
    "Squeeze", "Unsqueeze", "Expand", "Clone", "Index", "Split", "Unbind", "Cat", "Stack",
    "Alias", "ToCopy",
)  # fmt: skip
"""Autograd nodes that pass a product's range on (a bias added, a reshape)."""


def _projected(x: torch.Tensor, depth: int = 8) -> bool:
    """Whether `x` came out of a matrix product, through nothing but reshapes, slices
    and additions: the output of a linear layer, whose range its weights set (not a
    tanh's or an LSTM's h = o * tanh(c))."""
    node = x.grad_fn
    frontier = [node] if node is not None else []
    for _ in range(depth):
        following = []
        for fn in frontier:
            name = type(fn).__name__
            if name.startswith(_PRODUCTS):
                return True
            if name.startswith(_PASSING):
                following += [f for f, _ in fn.next_functions if f is not None]
        if not following:
            return False
        frontier = following[:16]
    return False


def _classes(name: str, x: torch.Tensor, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if name == "cross_entropy":
        return int(x.shape[1]) if x.dim() >= 2 else int(x.shape[0])
    dim = kwargs.get("dim", args[0] if args else None)
    if not isinstance(dim, int):
        dim = -1 if x.dim() <= 1 else 1  # torch's old implicit dimension: 1 for 2-D and up
    return int(x.shape[dim]) if x.dim() else 1


_LIBRARIES: tuple[str, ...] = (str(Path(torch.__file__).parent), str(Path(__file__).parent))


def skip_frames_in(folder: str) -> None:
    """Name softmaxes by the first frame outside `folder` too: a framework between the
    loop and torch (Keras), whose own lines say nothing of where the user's code is."""
    global _LIBRARIES
    if folder not in _LIBRARIES:
        _LIBRARIES = (*_LIBRARIES, folder)


def _caller() -> str:
    """file:line of the first frame outside torch, this package and the folders given to
    `skip_frames_in`: the loop's call."""
    frame: Any = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if not path.startswith(_LIBRARIES):
            return f"{Path(path).name}:{frame.f_lineno}"
        frame = frame.f_back
    return "torch"


def _watching(name: str, original: Any) -> Any:
    def watched(x: Any, *args: Any, **kwargs: Any) -> Any:
        inside = getattr(Softmaxes._inside, "on", False)
        if (
            not inside
            and Softmaxes._listeners
            and isinstance(x, torch.Tensor)
            and torch.is_grad_enabled()
            and x.is_floating_point()
        ):
            Softmaxes._inside.on = True
            try:
                where, classes = _caller(), _classes(name, x, args, kwargs)
                for listener in list(Softmaxes._listeners):
                    listener._note(where, classes, x)
                return original(x, *args, **kwargs)
            finally:
                Softmaxes._inside.on = False
        return original(x, *args, **kwargs)

    watched.__wrapped__ = original  # type: ignore[attr-defined]
    return watched


_TARGETS: list[tuple[Any, str]] = [
    (torch, "softmax"),
    (torch, "log_softmax"),
    (F, "softmax"),
    (F, "log_softmax"),
    (F, "cross_entropy"),
    (torch.Tensor, "softmax"),
    (torch.Tensor, "log_softmax"),
]


def _patch() -> None:
    for owner, name in _TARGETS:
        original = getattr(owner, name)
        Softmaxes._originals.append((owner, name, original))
        short = "cross_entropy" if name == "cross_entropy" else name
        setattr(owner, name, _watching(short, original))


def _unpatch() -> None:
    for owner, name, original in reversed(Softmaxes._originals):
        setattr(owner, name, original)
    Softmaxes._originals.clear()
