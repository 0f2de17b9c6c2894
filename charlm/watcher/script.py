"""`charlm watch SCRIPT [ARGS...]`: a training script, unchanged, run under a watcher.

The script runs as `python SCRIPT ARGS...` would run it (as `__main__`, with its own
folder first on the path and `sys.argv` its own), in this process. Global hooks attach
the watcher to what the script builds: every optimizer that steps, every module that
runs forward while gradients are on (its parameters, named by class: `LSTM.weight_ih_l0`,
and its gates if it is recurrent), and every softmax. A step ends where an optimizer
steps; its loss is the tensor `backward()` was last called on, or else the last output
of a loss module (`nn.CrossEntropyLoss`, ...) or loss function. Findings print as they
fire; when the script ends, however it ends, the report is printed, and the exit status
is the script's own (1 for an exception, whose traceback is printed as Python would).
"""

from __future__ import annotations

import runpy
import sys
import traceback
from pathlib import Path
from typing import IO, Any

import torch
import torch.optim.optimizer as optim_hooks
from torch import nn
from torch.nn.modules import module as module_hooks

from charlm.errors import InputError
from charlm.watcher.watcher import STDERR, Watcher

__all__ = ["run_script"]


class _Script:
    """The hooks that feed a watcher from a script that knows nothing of it."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.loss: torch.Tensor | None = None  # what backward was called on, this step
        self.seen_loss: torch.Tensor | None = None  # a loss module's latest output
        self.counts: dict[str, int] = {}
        self.modules: set[int] = set()
        self.backward = torch.Tensor.backward
        self.handles = [
            module_hooks.register_module_forward_hook(self.on_forward),
            optim_hooks.register_optimizer_step_post_hook(self.on_step),
        ]
        torch.Tensor.backward = self.noting_backward()  # type: ignore[method-assign]

    def noting_backward(self) -> Any:
        original = self.backward

        def backward(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            if tensor.numel() == 1:
                self.loss = tensor.detach()
            return original(tensor, *args, **kwargs)  # type: ignore[no-untyped-call]

        return backward

    def on_forward(self, module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(module, nn.modules.loss._Loss) and isinstance(output, torch.Tensor):
            if output.numel() == 1:
                self.seen_loss = output.detach()
            return
        if id(module) in self.modules or not torch.is_grad_enabled():
            return
        owns = any(True for _ in module.parameters(recurse=False))
        if not owns and not isinstance(module, nn.LSTM | nn.GRU):
            return
        self.modules.add(id(module))
        kind = type(module).__name__
        self.counts[kind] = self.counts.get(kind, 0) + 1
        n = self.counts[kind]
        own = nn.Module()  # its own parameters only, under the class's name
        for name, p in module.named_parameters(recurse=False):
            own.register_parameter(name, p)
        label = kind if n == 1 else f"{kind}{n}"
        self.watcher.add_module(own, prefix=label)
        self.watcher.recurrent.add(label, module)

    def on_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        loss = self.loss if self.loss is not None else self.seen_loss
        self.loss = None
        self.watcher.step(loss)

    def remove(self) -> None:
        torch.Tensor.backward = self.backward  # type: ignore[method-assign]
        for h in self.handles:
            h.remove()


def run_script(
    script: str | Path,
    args: list[str],
    *,
    log: str | Path | None = None,
    echo: IO[str] | None = None,
) -> int:
    """Run `script` with `args` under a watcher; its exit status. Findings and, when it
    ends, the report go to `echo` (default: standard error)."""
    path = Path(script)
    if not path.is_file():
        raise InputError(f"{script}: no such script")
    watcher = Watcher(None, None, log=log, echo=echo or STDERR, name=path.name)
    hooks = _Script(watcher)
    argv, syspath = sys.argv, list(sys.path)
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    status = 0
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        status = 130
    except BaseException:  # the script's own error, shown as Python shows it
        traceback.print_exc()
        status = 1
    finally:
        sys.argv, sys.path[:] = argv, syspath
        hooks.remove()
        print("\n" + watcher.report(), file=echo or sys.stderr, flush=True)
        watcher.close()
    return status
