"""The `Trainer`: the bookkeeping around training steps.

Per step it picks the next window of the training streams (truncated backpropagation
through time: the carried state is detached after every window, reset at every epoch
start, and zeroed per stream with probability `reset_prob`), sets the learning rate
from the schedule, and hands the step itself to `training.step.train_step`. Around the
steps it keeps the run's `Progress`, writes metrics rows, evaluates every
`eval_interval` steps and at the end (`evaluation.evaluate_streams`), saves checkpoints
through `checkpoint.save`, decides when to stop, and calls the callbacks. A resumed run
continues exactly where the saved one was.

At each logging step it also records the run's health signals (`diagnostics.signals`)
and hands every logged row to the run's `diagnostics.History`, whose detectors say in
words what is going wrong: each finding is logged as a warning, written to
metrics.jsonl and kept in the checkpoint's summary.

The trainer talks to the model only through `forward(ids, state)`, writes files only
through `checkpoint.save` and `MetricsLog`, and reports progress through callbacks and
`logging`, never `print`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from charlm import checkpoint
from charlm.checkpoint import Progress
from charlm.data import IdSplit, Streams
from charlm.diagnostics import History
from charlm.diagnostics.monitor import Monitor
from charlm.diagnostics.references import MAX_CHARS as REFERENCE_CHARS
from charlm.diagnostics.signals import gate_signals
from charlm.errors import ConfigError, TrainingError
from charlm.evaluation import evaluate_streams, validation_blocks
from charlm.model import CharRNN, ModelConfig, State
from charlm.runlog import (
    METRICS_FILE,
    DiagnosisRow,
    EvalRow,
    MetricsLog,
    NonfiniteRow,
    NullLog,
    ReferenceRow,
    Row,
    Signals,
    TrainRow,
)
from charlm.runtime import Runtime
from charlm.train_config import TrainConfig, lr_at
from charlm.training.callbacks import EvalInfo, StepInfo, TrainCallback, TrainResult
from charlm.training.clock import RunClock
from charlm.training.distributed import Cluster
from charlm.training.plan import RunPlan
from charlm.training.restore import restore_run
from charlm.training.saving import run_facts, save_run, summary
from charlm.training.step import StepOutcome, train_step
from charlm.vocab import Vocabulary

__all__ = ["Trainer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Stepped:
    """One step taken: what `train_step` said, the learning rate it used, its seconds,
    the characters it read (on every rank), and the gate signals of a probed step."""

    outcome: StepOutcome
    lr: float
    seconds: float
    chars: int
    gates: Signals | None


class Trainer:
    """Fits a `CharRNN` to a corpus split and writes checkpoints into `directory`."""

    def __init__(
        self,
        model_config: ModelConfig,
        config: TrainConfig,
        vocab: Vocabulary,
        split: IdSplit,
        directory: str | Path,
        *,
        resume_from: checkpoint.Checkpoint | None = None,
        callback: TrainCallback | None = None,
        runtime: Runtime | None = None,
        corpus_info: Mapping[str, Any] | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        if model_config.vocab_size != len(vocab):
            raise ConfigError(
                f"model vocab_size {model_config.vocab_size} != vocabulary size {len(vocab)}"
            )
        self.runtime = runtime or Runtime.choose(
            "cpu",
            threads=torch.get_num_threads(),
            hidden_size=model_config.hidden_size,
            cell=model_config.cell,
            precision=config.precision,
        )
        self.model_config = model_config
        self.config = config
        self.vocab = vocab
        self.directory = Path(directory)
        self.callback = callback or TrainCallback()
        self.corpus_info = dict(corpus_info or {})
        self.cluster = cluster or Cluster.single()

        torch.manual_seed(config.seed)
        self.data_rng = torch.Generator().manual_seed(config.seed + 1)
        self.model = CharRNN(model_config).to(self.device)
        self.net = self.cluster.wrap(self.model)  # what steps run through (DDP: several ranks)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            weight_decay=config.weight_decay,
            # one pass over each tensor rather than a dozen small operations
            fused=self.device.type in ("cpu", "cuda"),
        )
        ids = self.split = split
        self.streams = Streams(
            ids.train,
            config.batch_size,
            config.seq_len,
            rank=self.cluster.rank,
            world=self.cluster.world,
        )
        self.monitor = Monitor(
            torch.from_numpy(ids.train_prefix(REFERENCE_CHARS).astype(np.int64)),
            len(vocab),
            config.clip,
            config.log_interval,
            config.signals == "on",
            config.patience,
        )
        self.val_blocks = validation_blocks(ids.val_blocks, config.eval_max_chars, self.device)
        self.facts = run_facts(ids, self.val_blocks, self.model, self.bf16)  # for checkpoints
        self.progress = Progress()
        self.state: State | None = None
        self.stop_reason = ""
        self.has_best = resume_from is not None  # best weights of this run are on disk
        self._saved_step = 0
        self._log: MetricsLog | NullLog = NullLog()  # opened by `run`
        self.clock = RunClock(max_minutes=config.max_minutes)  # restarted by `run`
        self._losses: list[float] = []  # the training losses since the last logged row
        if resume_from is not None:
            self.progress, self.state = restore_run(
                resume_from, self.model, self.optimizer, self.data_rng, self.streams, self.device
            )
            self._saved_step = self.progress.step
        if self.cluster.world > 1:  # each rank its own dropout masks, fresh or resumed
            torch.manual_seed(config.seed + 7919 * self.cluster.rank + self.progress.step)
        if self.streams.batch_size != config.batch_size or self.streams.seq_len != config.seq_len:
            log.warning(
                "training text is short (%d chars): using batch size %d and window %d",
                ids.train_chars,
                self.streams.batch_size,
                self.streams.seq_len,
            )
        if not split.held_out:
            log.warning(
                "corpus too small to hold out a validation split: validation loss is "
                "measured on the training text"
            )

    @classmethod
    def from_plan(
        cls, plan: RunPlan, *, callback: TrainCallback | None = None, cluster: Cluster | None = None
    ) -> Trainer:
        """The trainer of a resolved plan (`plan.plan_run`), this process's place in
        `cluster` (one process when None)."""
        tc = plan.train_config
        return cls(
            plan.model_config,
            tc,
            plan.data.vocab,
            IdSplit.of_ids(plan.data.ids, tc.val_fraction, tc.split),
            plan.directory,
            resume_from=plan.resumed,
            callback=callback,
            runtime=plan.runtime,
            corpus_info={**plan.data.info(), "preset": plan.preset, "processes": plan.processes},
            cluster=cluster,
        )

    @property
    def device(self) -> torch.device:
        return self.runtime.device

    @property
    def bf16(self) -> bool:
        return self.runtime.bf16

    # -- the run ----------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train until `max_steps`, the time budget, a target loss or lost patience."""
        p = self.progress
        if p.step > 0:
            self.monitor.replay(self.directory / METRICS_FILE, p.step)
        if self.cluster.main:
            self._log = MetricsLog(self.directory, resumed_at=p.step if p.step > 0 else None)
        if p.step == 0:
            self._log.write(ReferenceRow(self.monitor.references))
        self.callback.on_start(self)
        self.clock = RunClock(p.elapsed_s, self.config.max_minutes)
        self._losses.clear()
        self.stop_reason = "max steps" if p.step >= self.config.max_steps else ""
        updating = False
        try:
            while not self.stop_reason:
                updating = True  # from here until the step is counted, weights may change
                stepped = self._step()
                updating = False
                self._after_step(stepped)
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            if updating:
                log.warning("interrupted during an optimiser update; %s", self._kept())
            elif self.cluster.world > 1:  # the other ranks are not there to gather from
                log.warning("interrupted; %s", self._kept())
            elif p.step > self._saved_step:
                self._save(improved=False, carried=self.state)
        finally:
            self._log.close()
        result = TrainResult(
            directory=self.directory,
            steps=p.step,
            elapsed_s=p.elapsed_s,
            train_loss=p.train_loss,
            val_loss=p.val_loss,
            best_val_loss=p.best_val_loss,
            best_step=p.best_step,
            stop_reason=self.stop_reason,
            val_held_out=self.split.held_out,
            chars_per_s=self.clock.chars_per_s,
            saved_step=self._saved_step,
        )
        self.callback.on_end(result)
        return result

    def _step(self) -> _Stepped:
        """Take the next window and train on it; the budget's share the ranks agreed on
        goes to the clock."""
        p = self.progress
        t0 = time.perf_counter()
        if p.window == 0:
            p.offset = self.streams.draw_offset(self.data_rng)
            self.state = None
        elif self.config.reset_prob > 0 and self.state is not None:
            self.state = self.streams.reset_some(self.state, self.config.reset_prob, self.data_rng)
        starts = self.streams.window_starts(p.offset)
        x, y = self.streams.window(starts[p.window])
        x, y = x.to(self.device), y.to(self.device)
        # the budget's share as all ranks agreed on it after the last step: ranks whose
        # clocks differ must still set one learning rate
        lr = lr_at(p.step, self.config, self.clock.used)
        probe = self.monitor.probes(p.step + 1) and self.cluster.main
        gates = gate_signals(self.model, x, self.state) if probe else None
        outcome = train_step(
            self.model,
            self.optimizer,
            x,
            y,
            self.state,
            lr=lr,
            clip=self.config.clip,
            bf16=self.bf16,
            probe=probe,
            net=self.net,
        )
        loss, self.clock.used = self.cluster.step_agreement(outcome.loss, self.clock.budget_share())
        outcome = dataclasses.replace(outcome, loss=loss)
        if not math.isfinite(outcome.loss):
            self._diagnose(NonfiniteRow(step=p.step + 1, loss=outcome.loss, lr=lr))
            raise TrainingError(
                f"training loss became {outcome.loss} at step {p.step + 1}; lower --lr "
                f"or --clip ({self._kept()})"
            )
        if not outcome.updated:
            log.warning(
                "step %d: gradient norm is %s; update skipped", p.step + 1, outcome.grad_norm
            )
        self.state = outcome.state
        p.step += 1
        p.window += 1
        if p.window >= len(starts):
            p.window = 0
            p.epoch += 1
        chars = x.numel() * self.cluster.world
        return _Stepped(outcome, lr, time.perf_counter() - t0, chars, gates)

    def _after_step(self, stepped: _Stepped) -> None:
        """Count the step, log it, and evaluate, save and stop when it is time."""
        outcome, lr, gates = stepped.outcome, stepped.lr, stepped.gates
        used = self.clock.used
        cfg, p = self.config, self.progress
        self.clock.count_step(stepped.seconds, stepped.chars)
        p.chars_seen += stepped.chars
        p.elapsed_s = self.clock.elapsed()
        p.train_loss = outcome.loss
        self._losses.append(outcome.loss)
        self.monitor.count(outcome.grad_norm)
        info = StepInfo(
            step=p.step,
            max_steps=cfg.max_steps,
            loss=outcome.loss,
            grad_norm=outcome.grad_norm,
            lr=lr,
            chars_per_s=self.clock.chars_per_s,
            elapsed_s=p.elapsed_s,
            time_fraction=min(1.0, used),
        )
        if p.step % cfg.log_interval == 0 and self.cluster.main:
            row = TrainRow(
                step=p.step,
                time_s=round(p.elapsed_s, 4),
                loss=sum(self._losses) / len(self._losses),
                grad_norm=outcome.grad_norm,
                lr=lr,
                chars_per_s=round(info.chars_per_s, 1),
                signals=self.monitor.signals(outcome.grad_norms, outcome.update_ratios, gates),
            )
            self._log.write(row)
            self._losses.clear()
            self._diagnose(row)
        self.callback.on_step(info)
        if used >= 1.0:
            self.stop_reason = "time budget"
        elif p.step >= cfg.max_steps:
            self.stop_reason = "max steps"
        if p.step % cfg.eval_interval == 0 or self.stop_reason:
            self._evaluate_and_save()

    def _kept(self) -> str:
        if self._saved_step == 0 and not self.has_best:
            return "no checkpoint was written"
        return f"the checkpoint from step {self._saved_step} is intact"

    def _evaluate_and_save(self) -> None:
        carried = self.cluster.gather_state(self.state)  # every rank takes part
        if self.cluster.main:
            self._evaluate_and_save_main(carried)
        self.stop_reason = self.cluster.agree(self.stop_reason)
        self._saved_step = self.progress.step

    def _evaluate_and_save_main(self, carried: State | None) -> None:
        cfg, p = self.config, self.progress
        t0 = time.perf_counter()
        val_loss, _ = evaluate_streams(self.model, self.val_blocks)
        eval_s = time.perf_counter() - t0
        if not math.isfinite(val_loss):
            raise TrainingError(
                f"validation loss became {val_loss} at step {p.step}; lower --lr or --clip "
                f"({self._kept()})"
            )
        p.val_loss = val_loss
        improved = val_loss < p.best_val_loss
        if improved:
            p.best_val_loss = val_loss
            p.best_step = p.step
            p.evals_since_best = 0
        else:
            p.evals_since_best += 1
        row = EvalRow(
            step=p.step,
            time_s=round(p.elapsed_s, 4),
            val_loss=val_loss,
            val_bits_per_char=val_loss / math.log(2),
            best_val_loss=p.best_val_loss,
            eval_s=round(eval_s, 4),
        )
        self._log.write(row)
        self._diagnose(row)
        if not self.stop_reason:
            if cfg.target_loss is not None and val_loss <= cfg.target_loss:
                self.stop_reason = "target loss"
            elif cfg.patience and p.evals_since_best >= cfg.patience:
                self.stop_reason = "no improvement"
        self._save(improved=improved, carried=carried)
        with self.clock.paused():  # plots and displays are not training
            self.callback.on_eval(
                EvalInfo(
                    step=p.step, val_loss=val_loss, best_val_loss=p.best_val_loss, improved=improved
                )
            )

    # -- diagnostics ----------------------------------------------------------

    @property
    def history(self) -> History:
        return self.monitor.history

    def _diagnose(self, row: Row) -> None:
        """Hand a logged row to the detectors; log and record what fires."""
        for finding in self.monitor.add(row):
            log.warning("%s", finding.line())
            self._log.write(DiagnosisRow(finding))

    def _save(self, *, improved: bool, carried: State | None) -> None:
        """Write the checkpoint (rank 0 only); `carried` is every stream's state."""
        facts = (self.facts, self.monitor.summary(), self.corpus_info)
        save_run(
            self.directory,
            model=self.model,
            optimizer=self.optimizer,
            data_rng=self.data_rng,
            progress=self.progress,
            carried=carried,
            model_config=self.model_config,
            train_config=self.config,
            vocab=self.vocab,
            summary=summary(self.progress, self.stop_reason, *facts),
            best=improved or not self.has_best,
        )
        self.has_best = True
        self._saved_step = self.progress.step
