"""Training progress for a person at a terminal: a tqdm bar, or one line per evaluation.

On a terminal the bar shows loss, validation loss, chars/s and the time left: a run with
`--max-minutes` counts time (elapsed, the budget, what is left, and the step reached),
any other run counts steps. When stderr is not a terminal (a log file, CI) a line is
written at each evaluation instead.
"""

from __future__ import annotations

import math
import sys

from tqdm import tqdm

from charlm.render import num
from charlm.training.callbacks import EvalInfo, StepInfo, TrainCallback, TrainingRun
from charlm.training.plan import BUDGET_ONLY_MAX_STEPS

__all__ = ["ProgressBar"]


class ProgressBar(TrainCallback):
    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.interactive = sys.stderr.isatty()
        self.val = math.nan
        self.last: StepInfo | None = None
        self.budget_s: float | None = None
        self.steps_bind = True

    def on_start(self, trainer: TrainingRun) -> None:
        cfg = trainer.config
        self.budget_s = None if cfg.max_minutes is None else cfg.max_minutes * 60
        self.steps_bind = cfg.max_steps < BUDGET_ONLY_MAX_STEPS
        if not self.interactive:
            return
        if self.budget_s is None:
            self.bar = tqdm(
                total=cfg.max_steps,
                initial=trainer.progress.step,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
            )
        else:
            self.bar = tqdm(
                desc=self._clock(0.0, trainer.progress.step, cfg.max_steps),
                total=self.budget_s,
                bar_format="{percentage:3.0f}%|{bar}| {desc}",  # desc: no ", " before it
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def on_step(self, info: StepInfo) -> None:
        self.last = info
        if self.bar is None:
            return
        if self.budget_s is None:
            self.bar.update(info.step - self.bar.n)
            if info.step % 10 == 0 or info.step == info.max_steps:
                self.bar.set_postfix_str(self._postfix(info), refresh=False)
        else:
            self.bar.n = min(self.budget_s, info.time_fraction * self.budget_s)
            self.bar.set_description_str(self._postfix(info), refresh=info.step % 10 == 0)

    def on_eval(self, info: EvalInfo) -> None:
        self.val = info.val_loss
        if self.bar is not None:
            if self.last is not None and self.budget_s is None:
                self.bar.set_postfix_str(self._postfix(self.last))
            elif self.last is not None:
                self.bar.set_description_str(self._postfix(self.last))
            return
        last = self.last
        line = f"step {info.step}: val {num(info.val_loss)}" + (" (best)" if info.improved else "")
        if last is not None:
            line += (
                f", loss {num(last.loss)}, {last.chars_per_s:,.0f} chars/s, {last.elapsed_s:.1f} s"
            )
            if self.budget_s is not None:
                left = self.budget_s * max(0.0, 1.0 - last.time_fraction)
                line += f", {_hms(left)} of the budget left"
        print(line, file=sys.stderr, flush=True)

    def _postfix(self, info: StepInfo) -> str:
        losses = (
            f"loss {num(info.loss)} val {num(self.val)} "
            f"{info.chars_per_s / 1000:.0f}k chars/s lr {info.lr:.1e}"
        )
        if self.budget_s is None:
            return losses
        return self._clock(info.time_fraction, info.step, info.max_steps) + ", " + losses

    def _clock(self, fraction: float, step: int, max_steps: int) -> str:
        """'0:12 of 1:00, 0:48 left, step 200' (time of this invocation's budget)."""
        assert self.budget_s is not None
        used = min(self.budget_s, fraction * self.budget_s)
        steps = f"step {step:,}" + (f"/{max_steps:,}" if self.steps_bind else "")
        return f"{_hms(used)} of {_hms(self.budget_s)}, {_hms(self.budget_s - used)} left, {steps}"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hms(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
