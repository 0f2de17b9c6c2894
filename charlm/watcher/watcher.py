"""`Watcher`: hooks on a model and its optimizers, and the rules read once a step.

The loop calls `step(loss, **metrics)` once per step; the watcher then reads what its
probes measured since the last call (`probes`), brings the run's record up to date
(`record.Run`), runs the rules, prints a line for each finding as it fires (and as it
passes), and, with a log, writes the step's row and each finding to it as JSON Lines,
which `charlm diagnose --log` reads. `report()` is the diagnosis in the words `charlm
diagnose` prints. `close()` removes every hook; a watcher is also a context manager.

With no optimizer given, the watcher takes every optimizer that steps while it is open
and holds some of the model's parameters (a global optimizer hook). With no model, it
watches what the optimizers hold (a model of plain tensors).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import torch
import torch.optim.optimizer as optim_hooks
from torch import nn

from charlm.diagnostics.findings import Finding, findings_block
from charlm.runlog import FindingRow, Row, Signals, TrainRow
from charlm.watcher.probes import Gradients, Recurrent, Watched
from charlm.watcher.record import Run, Site, StepRecord
from charlm.watcher.rules import RULES
from charlm.watcher.softmaxes import Softmaxes

__all__ = ["STDERR", "Watcher", "watch"]

_FIRST = 20  # steps kept whole from the start, for the rules that compare with them
STDERR: Any = object()
"""`echo`'s default: the standard error of the moment the watcher speaks (it may have
been redirected since the watcher was made)."""


def watch(
    model: nn.Module | Iterable[nn.Module] | None = None,
    optimizer: torch.optim.Optimizer | Iterable[torch.optim.Optimizer] | None = None,
    *,
    log: str | Path | None = None,
    echo: IO[str] | None = STDERR,
    name: str = "the loop",
) -> Watcher:
    """Watch `model` (a module, several, or none) trained by `optimizer` (one, several,
    or None: any that steps with the model's parameters) in a loop of your own. Call
    `step(loss, **metrics)` once per step. `log`: a JSON Lines file of every step and
    finding; `echo`: where findings are printed as they fire (None: nowhere)."""
    return Watcher(model, optimizer, log=log, echo=echo, name=name)


class Watcher:
    """Why isn't the net learning? See the package's docstring."""

    def __init__(
        self,
        model: nn.Module | Iterable[nn.Module] | None,
        optimizer: torch.optim.Optimizer | Iterable[torch.optim.Optimizer] | None,
        *,
        log: str | Path | None = None,
        echo: IO[str] | None = STDERR,
        name: str = "the loop",
    ) -> None:
        self.name = name
        self.echo = echo
        self.run = Run()
        self.watched = Watched()
        self.gradients = Gradients(self.watched)
        self.softmaxes = Softmaxes()
        self.recurrent = Recurrent()
        self.modules: list[nn.Module] = []
        self.optimizers: list[torch.optim.Optimizer] = []
        self._handles: list[Any] = []
        self._findings: dict[str, Finding] = {}
        self._holding: dict[str, int] = {}  # rule -> the step its condition began to hold
        self._pending: list[tuple[dict[str, float], int, int]] = []  # norms at each opt step
        self._adopt_any = optimizer is None
        self._closed = False
        self._log: IO[str] | None = open(log, "w", encoding="utf-8") if log else None  # noqa: SIM115
        modules = [model] if isinstance(model, nn.Module) else list(model or [])
        for k, m in enumerate(modules):
            self.add_module(m, prefix="" if len(modules) == 1 else f"{type(m).__name__.lower()}{k}")
        optimizers = (
            [optimizer] if isinstance(optimizer, torch.optim.Optimizer) else list(optimizer or [])
        )
        for opt in optimizers:
            self.add_optimizer(opt)
        if self._adopt_any:
            self._handles.append(optim_hooks.register_optimizer_step_pre_hook(self._adopt))
        self.softmaxes.start()

    # -- what the loop calls ----------------------------------------------------------

    def step(self, loss: torch.Tensor | float | None = None, **metrics: float) -> list[Finding]:
        """End of a step: its loss and any metrics (`val_loss=`, `val_accuracy=`, ...).
        Returns the findings that fired at this step."""
        run = self.run
        run.steps += 1
        value = _number(loss)
        held, checked = self.gradients.collect_leftovers()
        norms, with_grad, stepped = self._step_norms()
        record = StepRecord(
            step=run.steps,
            loss=value,
            metrics={
                k: v for k, v in ((k, _number(v)) for k, v in metrics.items()) if v is not None
            },
            grad_norms=norms,
            with_grad=with_grad,
            stepped=stepped,
            held=held,
            checked=checked,
        )
        run.records.append(record)
        if len(run.first) < _FIRST:
            run.first.append(record)
        if checked and held * 2 >= checked:
            run.held_streak += 1
            run.cleared_streak = 0
        elif checked:
            run.cleared_streak += 1
            run.held_streak = 0
        for call in self.softmaxes.collect():
            site = run.sites.get(call.where)
            if site is None:
                site = run.sites[call.where] = Site(call.where, call.classes, run.steps)
            site.add(run.steps, call)
        run.gates.update(self.recurrent.latest)
        arrived = {pid: a.arrived for pid, a in self.gradients.arrivals.items()}
        run.arrived = sum(arrived.values())
        run.params = len(arrived)
        run.never = [self.watched.names[pid] for pid, n in arrived.items() if not n]
        self.recurrent.step(run.steps)
        self._write(
            TrainRow.named(
                run.steps,
                {
                    "loss": value,
                    **record.metrics,
                    **({"grad_norm": record.grad_norm} if norms else {}),
                },
                signals=Signals(grad_norms=norms) if norms else Signals(),
            )
        )
        return self._check()

    def split(self, train_targets: Any, val_targets: Any) -> list[Finding]:
        """The class labels of the training and validation sets (tensors, arrays or
        lists of integers), for the rules that compare them. Returns what fired."""
        self.run.train_labels = _counts(train_targets)
        self.run.val_labels = _counts(val_targets)
        return self._check()

    @property
    def findings(self) -> list[Finding]:
        """What fired and still holds, in the order it fired, counting a rule whose
        condition holds now as fired (see `rules.Rule`'s patience)."""
        return [f for f in self._fired() if not f.passed]

    @property
    def passed(self) -> list[Finding]:
        """What fired and the run got past since (each with `passed`: how): not a
        finding any longer, kept to be shown apart."""
        return [f for f in self._fired() if f.passed]

    def _fired(self) -> list[Finding]:
        self._check(final=True)
        return list(self._findings.values())

    def report(self) -> str:
        """The diagnosis, in the words `charlm diagnose` prints."""
        self._check(final=True)
        run = self.run
        lines = [f"Diagnosis of {self.name} ({run.steps:,} steps, watched)", "", "What was learned"]
        losses = [(r.step, r.loss) for r in [*run.first, *run.records] if r.loss is not None]
        if losses:
            (s0, l0), (s1, l1) = losses[0], losses[-1]
            low = min(losses, key=lambda x: x[1])
            lines.append(
                f"  loss              {l0:.4g} at step {s0}, {l1:.4g} at step {s1} "
                f"(lowest {low[1]:.4g}, step {low[0]})"
            )
        else:
            lines.append("  (no loss was given to `step`)")
        for name in sorted({k for r in run.records for k in r.metrics}):
            values = run.metric(name)
            lines.append(f"  {name:<17} {values[-1][1]:.4g} at step {values[-1][0]}")
        if run.steps or self._findings:
            lines += ["", *findings_block(self._fired())]
        else:
            lines += ["", "Findings: none judged: no step was seen (no optimizer stepped)."]
        picture = self._picture()
        if picture:
            lines += ["", f"What was measured, at step {run.steps:,}", *picture]
        return "\n".join(lines)

    def close(self) -> None:
        """Remove every hook (the loop runs as if never watched) and close the log."""
        if self._closed:
            return
        self._closed = True
        self.softmaxes.stop()
        self.gradients.remove()
        self.recurrent.remove()
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what it watches ----------------------------------------------------------------

    def add_module(self, module: nn.Module, prefix: str = "") -> None:
        """Watch `module` too: its parameters' gradients, its recurrent layers' gates."""
        if any(module is m for m in self.modules):
            return
        self.modules.append(module)
        self.watched.add_module(prefix, module)
        for name, sub in module.named_modules():
            self.recurrent.add(".".join(x for x in (prefix, name) if x) or "model", sub)
        self.gradients.hook()
        self._check_optimized()

    def add_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Watch `optimizer` too: its steps, and the parameters it holds."""
        if any(optimizer is o for o in self.optimizers):
            return
        self.optimizers.append(optimizer)
        for group in optimizer.param_groups:
            for p in group["params"]:
                self.watched.add_tensor(p)
                self.gradients.optimized.add(id(p))
        self.gradients.hook()
        self._handles.append(optimizer.register_step_pre_hook(self._before_step))
        self._handles.append(optimizer.register_step_post_hook(self._after_step))
        self._check_optimized()

    def _adopt(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Global hook: an optimizer steps; watch it if it holds the model's parameters
        (any, when there is no model)."""
        if any(optimizer is o for o in self.optimizers):
            return
        mine = set(self.watched.params)
        held = {id(p) for g in optimizer.param_groups for p in g["params"]}
        if not self.modules or held & mine:
            self.add_optimizer(optimizer)  # its own hooks run for this step too

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        norms, nonzero, _ = self.gradients.norms(params)
        self._pending.append((norms, nonzero, len(params)))
        self.run.optimizer_steps += 1
        self.run.optimizer_params = sum(
            len(g["params"]) for o in self.optimizers for g in o.param_groups
        )

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.gradients.after_step()

    def _step_norms(self) -> tuple[dict[str, float], int, int]:
        """The gradient norms of the optimizer steps since the last `step` (the last of
        them), or, with no optimizer watched, of the parameters as they are now."""
        pending, self._pending = self._pending, []
        if pending:
            norms, nonzero, _ = pending[-1]
            return norms, nonzero, len(pending)
        if self.optimizers:
            return {}, 0, 0
        norms, nonzero, _ = self.gradients.norms(self.watched.params.values())
        self.gradients.after_step()  # with no optimizer, a step ends here
        return norms, nonzero, 0

    def _check_optimized(self) -> None:
        if not self.optimizers or not self.modules:
            return
        held = {id(p) for o in self.optimizers for g in o.param_groups for p in g["params"]}
        self.run.not_optimized = [
            self.watched.names[pid]
            for m in self.modules
            for p in m.parameters()
            if p.requires_grad and (pid := id(p)) not in held
        ]

    # -- findings -------------------------------------------------------------------------

    def _check(self, final: bool = False) -> list[Finding]:
        """Run the rules; `final`: the run is being reported, so a rule whose condition
        holds fires now, however long it has held."""
        new = []
        for rule in RULES:
            known = self._findings.get(rule.name)
            if known is None:
                found = rule.fires(self.run)
                if found is None:
                    self._holding.pop(rule.name, None)
                    continue
                since = self._holding.setdefault(rule.name, self.run.steps)
                if self.run.steps - since + 1 < rule.patience and not final:
                    continue
                if rule.patience > 1:  # reported from when it began to hold
                    found = dataclasses.replace(found, step=since)
                self._findings[rule.name] = found
                self.run.fired.add(rule.name)
                new.append(found)
                self._say(f"charlm: {found.line()}")
                self._write(FindingRow(found))
            elif not known.passed and rule.clears is not None:
                how = rule.clears(self.run)
                if how:
                    passed = Finding(
                        known.name, known.step, known.seen, known.causes, known.advice, how
                    )
                    self._findings[rule.name] = passed
                    self._say(f"charlm: {known.name} (step {known.step}) has passed: {how}")
                    self._write(FindingRow(passed))
        return new

    def _say(self, line: str) -> None:
        if self.echo is not None:
            print(line, file=sys.stderr if self.echo is STDERR else self.echo, flush=True)

    def _write(self, row: Row) -> None:
        """Write a row to the log, if any: what is None left out, NaN kept (`charlm
        diagnose --log` reads a NaN loss as one)."""
        if self._log is not None:
            clean = {k: v for k, v in row.to_json().items() if v is not None}
            self._log.write(json.dumps(clean, default=_plain) + "\n")
            self._log.flush()

    def _picture(self) -> list[str]:
        run, lines = self.run, []
        last = run.last
        if last is not None and last.grad_norms:
            shown = ", ".join(f"{k} {v:.3g}" for k, v in list(last.grad_norms.items())[:8])
            first = next((r for r in run.first if r.grad_norm), None)
            since = (
                f" (all: {first.grad_norm:.3g} at step {first.step}, {last.grad_norm:.3g} now)"
                if first and last.grad_norm
                else ""
            )
            lines.append(f"  gradient norm     {shown}{since}")
        if last is not None and last.checked:
            of = f"the {last.checked} parameters" if last.checked > 1 else "the 1 parameter"
            if not last.held:
                state = f"yes: none of {of} held"
            elif last.held * 2 >= last.checked:
                state = f"no: {last.held} of {of} held"
            else:
                state = f"in part: {last.held} of {of} held"
            lines.append(f"  gradients cleared {state} earlier gradients when backward began")
        elif run.optimizer_steps and not run.arrived:
            lines.append("  gradients         none has ever arrived")
        for site in list(run.sites.values())[:4]:
            lines.append(
                f"  softmax input     {site.where}: {site.classes} classes, |value| up to "
                f"{site.largest_ever:.3g}"
            )
        for name, g in list(run.gates.items())[:4]:
            forget = (
                f"forget gate {g.forget:.2f}"
                if g.kind == "lstm" and g.forget is not None
                else (f"update gate {g.forget:.2f}" if g.forget is not None else "")
            )
            bias = f" (bias {g.forget_bias:+.2f})" if g.forget_bias is not None else ""
            lines.append(
                f"  gates {name:<11} {forget}{bias}, {g.saturated:.0%} saturated, over "
                f"{g.length} steps"
            )
        if run.train_labels and run.val_labels:
            lines.append(f"  labels            training: {_shares_text(run.train_labels)}")
            lines.append(f"                    validation: {_shares_text(run.val_labels)}")
        return lines


def _shares_text(counts: dict[int, int]) -> str:
    total = sum(counts.values())
    return ", ".join(f"class {c} {n / total:.1%}" for c, n in sorted(counts.items()))


def _number(value: object) -> float | None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.detach().item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _counts(targets: Any) -> dict[int, int]:
    if isinstance(targets, torch.Tensor):
        values = targets.detach().reshape(-1).tolist()
    else:
        values = [int(x) for x in (targets.tolist() if hasattr(targets, "tolist") else targets)]
    counts: dict[int, int] = {}
    for v in values:
        counts[int(v)] = counts.get(int(v), 0) + 1
    return counts


def _plain(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)
