"""Training progress for a person at a terminal: a tqdm bar, or one line per evaluation.

On a terminal the bar shows loss, validation loss, chars/s and the time left. When
stderr is not a terminal (a log file, CI) a line is written at each evaluation instead.
"""

from __future__ import annotations

import math
import sys

from tqdm import tqdm

from charlm.render import num
from charlm.training.callbacks import EvalInfo, StepInfo, TrainCallback
from charlm.training.trainer import Trainer

__all__ = ["ProgressBar"]


class ProgressBar(TrainCallback):
    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.interactive = sys.stderr.isatty()
        self.val = math.nan
        self.last: StepInfo | None = None

    def on_start(self, trainer: Trainer) -> None:
        total = trainer.config.max_steps
        if self.interactive:
            self.bar = tqdm(
                total=total,
                initial=trainer.progress.step,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def on_step(self, info: StepInfo) -> None:
        self.last = info
        if self.bar is not None:
            self.bar.update(info.step - self.bar.n)
            if info.step % 10 == 0 or info.step == info.max_steps:
                self.bar.set_postfix_str(self._postfix(info), refresh=False)

    def on_eval(self, info: EvalInfo) -> None:
        self.val = info.val_loss
        if self.bar is not None:
            if self.last is not None:
                self.bar.set_postfix_str(self._postfix(self.last))
            return
        last = self.last
        line = f"step {info.step}: val {num(info.val_loss)}" + (" (best)" if info.improved else "")
        if last is not None:
            line += (
                f", loss {num(last.loss)}, {last.chars_per_s:,.0f} chars/s, {last.elapsed_s:.1f} s"
            )
        print(line, file=sys.stderr, flush=True)

    def _postfix(self, info: StepInfo) -> str:
        return (
            f"loss {num(info.loss)} val {num(self.val)} "
            f"{info.chars_per_s / 1000:.0f}k chars/s lr {info.lr:.1e}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
