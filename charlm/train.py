"""Training: `TrainConfig` and the `Trainer` that fits a model to a corpus split.

The loop, once per step: clear gradients, run one window of every stream from the
state the previous window left (truncated backpropagation through time), take the
cross-entropy of the logits against the next characters, backpropagate, clip the
gradient norm (the norm before clipping is logged), and take an Adam step at the
scheduled learning rate (linear warm-up, then cosine decay to `min_lr_ratio * lr`).
The carried state is detached after every window and reset at every epoch start.

Every `eval_interval` steps, and when the run ends, the validation text is read as
whole streams with state carried (the standard character-LM figure) and a checkpoint
is written: the best-validation weights for inference and everything `--resume`
needs for the latest step. A resumed run continues exactly where the saved one was.

The trainer talks to the model only through `forward(ids, state)`; it writes files only
through `checkpoint.save` and `MetricsLog`, and reports progress through callbacks and
`logging`, never `print`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from charlm import checkpoint
from charlm._dictconfig import from_dict
from charlm.data import Split, Streams
from charlm.errors import ConfigError, IncompatibleCheckpointError, TrainingError
from charlm.metrics import MetricsLog
from charlm.model import CharLSTM, ModelConfig, State
from charlm.vocab import Vocabulary

__all__ = [
    "CallbackList",
    "EvalInfo",
    "StepInfo",
    "TrainCallback",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "evaluate_streams",
    "lr_at",
]

log = logging.getLogger(__name__)

_EVAL_CHUNK = 1024
_EVAL_STREAM_CHARS = 4096
_EVAL_MAX_STREAMS = 32


@dataclass(frozen=True)
class TrainConfig:
    """How to train; saved in every checkpoint."""

    batch_size: int = 32
    seq_len: int = 64
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.0
    clip: float = 1.0
    max_steps: int = 2000
    max_minutes: float | None = None
    eval_interval: int = 100
    eval_max_chars: int = 262_144
    target_loss: float | None = None
    patience: int | None = None
    val_fraction: float = 0.1
    split: str = "interleaved"
    seed: int = 0
    log_interval: int = 10
    reset_prob: float = 0.05
    precision: str = "auto"
    """'fp32', 'bf16' (autocast; weights and optimiser stay float32) or 'auto': bf16
    where the device computes it natively and the model is large enough to gain."""

    def __post_init__(self) -> None:
        positive_ints = (
            "batch_size",
            "seq_len",
            "max_steps",
            "eval_interval",
            "eval_max_chars",
            "log_interval",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        if not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        _positive("lr", self.lr)
        _positive("clip", self.clip)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        if not 0.0 <= self.weight_decay < 1.0:
            raise ConfigError(f"weight_decay must be in [0, 1), got {self.weight_decay!r}")
        if not 0.0 <= self.reset_prob <= 1.0:
            raise ConfigError(f"reset_prob must be in [0, 1], got {self.reset_prob!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.split not in ("interleaved", "tail"):
            raise ConfigError(f"split must be 'interleaved' or 'tail', got {self.split!r}")
        if self.max_minutes is not None:
            _positive("max_minutes", self.max_minutes)
        if self.target_loss is not None and not (
            math.isfinite(self.target_loss) and self.target_loss >= 0
        ):
            raise ConfigError(f"target_loss must be >= 0, got {self.target_loss!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise ConfigError(f"patience must be a positive integer, got {self.patience!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> TrainConfig:
        return from_dict(cls, data, "train config")


def _positive(name: str, value: object) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)) or float(value) <= 0:  # type: ignore[arg-type]
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def lr_at(step: int, config: TrainConfig, time_fraction: float = 0.0) -> float:
    """Learning rate for optimiser step `step` (0-based): warm-up, then cosine decay.

    The decay follows whichever budget runs out first: the steps, or (`time_fraction`,
    the share of `max_minutes` used so far) the wall-clock time.
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, config.max_steps - config.warmup_steps)
    progress = min(1.0, max((step - config.warmup_steps) / span, time_fraction))
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class StepInfo:
    step: int
    max_steps: int
    loss: float
    grad_norm: float
    lr: float
    chars_per_s: float
    elapsed_s: float


@dataclass(frozen=True)
class EvalInfo:
    step: int
    val_loss: float
    best_val_loss: float
    improved: bool


class TrainCallback:
    """Hooks for progress display and plots; the default does nothing.

    `on_eval` runs after the evaluation's checkpoint and metrics are written; `on_end`
    after the run's last checkpoint.
    """

    def on_start(self, trainer: Trainer) -> None: ...

    def on_step(self, info: StepInfo) -> None: ...

    def on_eval(self, info: EvalInfo) -> None: ...

    def on_end(self, result: TrainResult) -> None: ...


class CallbackList(TrainCallback):
    """Several callbacks called in order."""

    def __init__(self, *callbacks: TrainCallback | None) -> None:
        self.callbacks = [c for c in callbacks if c is not None]

    def on_start(self, trainer: Trainer) -> None:
        for c in self.callbacks:
            c.on_start(trainer)

    def on_step(self, info: StepInfo) -> None:
        for c in self.callbacks:
            c.on_step(info)

    def on_eval(self, info: EvalInfo) -> None:
        for c in self.callbacks:
            c.on_eval(info)

    def on_end(self, result: TrainResult) -> None:
        for c in self.callbacks:
            c.on_end(result)


@dataclass(frozen=True)
class TrainResult:
    directory: Path
    steps: int
    elapsed_s: float
    train_loss: float
    val_loss: float
    best_val_loss: float
    best_step: int
    stop_reason: str
    val_held_out: bool
    chars_per_s: float


@dataclass
class _Progress:
    """Everything about the run's position that a resume must restore."""

    step: int = 0
    epoch: int = 0
    offset: int = 0
    window: int = 0
    elapsed_s: float = 0.0
    chars_seen: int = 0
    train_loss: float = math.nan
    val_loss: float = math.nan
    best_val_loss: float = math.inf
    best_step: int = 0
    evals_since_best: int = 0
    stop_reason: str = ""


BF16_MIN_HIDDEN = 256
"""Below this hidden size bf16 autocast gains nothing measurable on a CPU."""


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_bf16(precision: str, device: torch.device, model: ModelConfig) -> bool:
    """Whether a run with `precision` trains under bf16 autocast on `device`."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        if not bf16_supported(device):
            raise ConfigError(f"precision bf16 asked for, but {device} has no native bf16")
        return True
    return bf16_supported(device) and model.hidden_size >= BF16_MIN_HIDDEN


def evaluate_streams(
    model: CharLSTM, blocks: torch.Tensor, chunk: int = _EVAL_CHUNK
) -> tuple[float, int]:
    """Mean cross-entropy (nats/char) of reading each row of `blocks` as one stream.

    blocks: (G, N) ids; every row starts from zero state and its first character is
    context only. Returns (mean loss, number of predicted characters).
    """
    was_training = model.training
    model.eval()
    total = 0.0
    count = 0
    state: State | None = None
    x_all, y_all = blocks[:, :-1], blocks[:, 1:]  # (G, N-1)
    try:
        with torch.inference_mode():
            for start in range(0, x_all.shape[1], chunk):
                x = x_all[:, start : start + chunk]
                y = y_all[:, start : start + chunk]
                logits, state = model(x, state)  # (G, t, V)
                total += float(
                    F.cross_entropy(
                        logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
                    )
                )
                count += y.numel()
    finally:
        model.train(was_training)
    return total / max(1, count), count


class Trainer:
    """Fits a `CharLSTM` to a corpus split and writes checkpoints into `directory`."""

    def __init__(
        self,
        model_config: ModelConfig,
        config: TrainConfig,
        vocab: Vocabulary,
        split: Split,
        directory: str | Path,
        *,
        resume_from: checkpoint.Checkpoint | None = None,
        callback: TrainCallback | None = None,
        device: str | torch.device = "cpu",
        corpus_info: Mapping[str, Any] | None = None,
    ) -> None:
        if model_config.vocab_size != len(vocab):
            raise ConfigError(
                f"model vocab_size {model_config.vocab_size} != vocabulary size {len(vocab)}"
            )
        self.model_config = model_config
        self.config = config
        self.vocab = vocab
        self.split = split
        self.directory = Path(directory)
        self.callback = callback or TrainCallback()
        self.device = torch.device(device)
        self.corpus_info = dict(corpus_info or {})

        torch.manual_seed(config.seed)
        self.data_rng = torch.Generator().manual_seed(config.seed + 1)
        self.model = CharLSTM(model_config).to(self.device)
        self.bf16 = resolve_bf16(config.precision, self.device, model_config)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        train_ids = vocab.encode_compact(split.train, what="training text")
        self.streams = Streams(train_ids, config.batch_size, config.seq_len)
        self.val_blocks = self._val_tensor()
        self.progress = _Progress()
        self.state: State | None = None
        self._has_best = resume_from is not None  # best weights of this run are on disk
        self._saved_step = 0
        self._paused_s = 0.0
        if resume_from is not None:
            self._restore(resume_from)
        if self.streams.batch_size != config.batch_size or self.streams.seq_len != config.seq_len:
            log.warning(
                "training text is short (%d chars): using batch size %d and window %d",
                len(split.train),
                self.streams.batch_size,
                self.streams.seq_len,
            )
        if not split.held_out:
            log.warning(
                "corpus too small to hold out a validation split: validation loss is "
                "measured on the training text"
            )

    def _val_tensor(self) -> torch.Tensor:
        blocks = list(self.split.val_blocks)
        if len(blocks) == 1 and len(blocks[0]) >= 2 * _EVAL_STREAM_CHARS:
            # One long block (a tail split) read as one stream would run at batch 1:
            # read it as parallel streams of at least _EVAL_STREAM_CHARS instead.
            text = blocks[0]
            n = min(_EVAL_MAX_STREAMS, len(text) // _EVAL_STREAM_CHARS)
            size = len(text) // n
            blocks = [text[i * size : (i + 1) * size] for i in range(n)]
        per_block = max(2, self.config.eval_max_chars // len(blocks))
        length = min(per_block, *(len(b) for b in blocks))
        ids = [self.vocab.encode(b[:length], what="validation text") for b in blocks]
        return torch.stack(ids).to(self.device)  # (G, N)

    # -- the loop -------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train until `max_steps`, the time budget, a target loss or lost patience."""
        cfg = self.config
        p = self.progress
        metrics = MetricsLog(self.directory, keep_through_step=p.step if p.step > 0 else None)
        self.callback.on_start(self)
        t_run = time.perf_counter()
        self._paused_s = 0.0
        elapsed_before = p.elapsed_s
        step_time = 0.0
        chars_timed = 0
        loss_sum = 0.0
        loss_n = 0
        updating = False
        self._saved_step = p.step
        p.stop_reason = ""
        try:
            while p.step < cfg.max_steps and not p.stop_reason:
                t0 = time.perf_counter()
                if p.window == 0:
                    p.offset = self.streams.draw_offset(self.data_rng)
                    self.state = None
                elif cfg.reset_prob > 0 and self.state is not None:
                    self.state = self._reset_some(self.state)
                starts = self.streams.window_starts(p.offset)
                x, y = self.streams.window(starts[p.window])
                x, y = x.to(self.device), y.to(self.device)
                used = 0.0
                if cfg.max_minutes is not None:
                    used = (time.perf_counter() - t_run - self._paused_s) / (cfg.max_minutes * 60)
                lr = lr_at(p.step, cfg, used)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.model.train()
                self.optimizer.zero_grad(set_to_none=True)
                with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
                    logits, new_state = self.model(x, self.state)  # (B, T, V)
                logits = logits.float()
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingError(
                        f"training loss became {loss_value} at step {p.step + 1}; lower --lr "
                        f"or --clip ({self._kept()})"
                    )
                loss.backward()  # type: ignore[no-untyped-call]
                grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip))
                updating = True
                if math.isfinite(grad_norm):
                    self.optimizer.step()
                else:
                    log.warning(
                        "step %d: gradient norm is %s; update skipped", p.step + 1, grad_norm
                    )
                self.state = (new_state[0].detach(), new_state[1].detach())
                p.step += 1
                p.window += 1
                if p.window >= len(starts):
                    p.window = 0
                    p.epoch += 1
                updating = False

                dt = time.perf_counter() - t0
                step_time += dt
                chars_timed += x.numel()
                p.chars_seen += x.numel()
                p.elapsed_s = elapsed_before + time.perf_counter() - t_run - self._paused_s
                loss_sum += loss_value
                loss_n += 1
                p.train_loss = loss_value
                info = StepInfo(
                    step=p.step,
                    max_steps=cfg.max_steps,
                    loss=loss_value,
                    grad_norm=grad_norm,
                    lr=lr,
                    chars_per_s=chars_timed / step_time if step_time > 0 else 0.0,
                    elapsed_s=p.elapsed_s,
                )
                if p.step % cfg.log_interval == 0:
                    metrics.write(
                        kind="train",
                        step=p.step,
                        time_s=round(p.elapsed_s, 4),
                        loss=loss_sum / loss_n,
                        grad_norm=grad_norm,
                        lr=lr,
                        chars_per_s=round(info.chars_per_s, 1),
                    )
                    loss_sum, loss_n = 0.0, 0
                self.callback.on_step(info)

                if (
                    cfg.max_minutes is not None
                    and time.perf_counter() - t_run - self._paused_s >= cfg.max_minutes * 60
                ):
                    p.stop_reason = "time budget"
                at_end = p.step >= cfg.max_steps or bool(p.stop_reason)
                if p.step % cfg.eval_interval == 0 or at_end:
                    self._evaluate_and_save(metrics)
            if not p.stop_reason:
                p.stop_reason = "max steps"
        except KeyboardInterrupt:
            p.stop_reason = "interrupted"
            if updating:
                log.warning(
                    "interrupted during an optimiser update; keeping the checkpoint from step %d",
                    self._saved_step,
                )
            elif p.step > self._saved_step:
                self._save(improved=False)
        finally:
            metrics.close()
        result = TrainResult(
            directory=self.directory,
            steps=p.step,
            elapsed_s=p.elapsed_s,
            train_loss=p.train_loss,
            val_loss=p.val_loss,
            best_val_loss=p.best_val_loss,
            best_step=p.best_step,
            stop_reason=p.stop_reason,
            val_held_out=self.split.held_out,
            chars_per_s=chars_timed / step_time if step_time > 0 else 0.0,
        )
        self.callback.on_end(result)
        return result

    def _kept(self) -> str:
        if self._saved_step == 0 and not self._has_best:
            return "no checkpoint was written"
        return f"the checkpoint from step {self._saved_step} is intact"

    def _reset_some(self, state: State) -> State:
        """Zero the carried state of each stream with probability `reset_prob`.

        Without this the model would see a zero state only at epoch starts and would be
        unsure right after a short prompt, which is read from zero state.
        """
        keep = torch.rand(state[0].shape[1], generator=self.data_rng) >= self.config.reset_prob
        mask = keep.to(state[0].dtype).to(self.device).view(1, -1, 1)  # (1, B, 1)
        return state[0] * mask, state[1] * mask

    def _evaluate_and_save(self, metrics: MetricsLog) -> None:
        cfg = self.config
        p = self.progress
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
        metrics.write(
            kind="eval",
            step=p.step,
            time_s=round(p.elapsed_s, 4),
            val_loss=val_loss,
            val_bits_per_char=val_loss / math.log(2),
            best_val_loss=p.best_val_loss,
            eval_s=round(eval_s, 4),
        )
        if not p.stop_reason:
            if cfg.target_loss is not None and val_loss <= cfg.target_loss:
                p.stop_reason = "target loss"
            elif cfg.patience is not None and p.evals_since_best >= cfg.patience:
                p.stop_reason = "no improvement"
        self._save(improved=improved)
        t0 = time.perf_counter()
        self.callback.on_eval(
            EvalInfo(
                step=p.step, val_loss=val_loss, best_val_loss=p.best_val_loss, improved=improved
            )
        )
        self._paused_s += time.perf_counter() - t0  # plots and displays are not training

    # -- checkpoints ----------------------------------------------------------

    def _summary(self) -> dict[str, Any]:
        p = self.progress

        def num(v: float) -> float | None:
            return v if math.isfinite(v) else None

        return {
            "step": p.step,
            "epoch": p.epoch,
            "elapsed_s": round(p.elapsed_s, 3),
            "chars_seen": p.chars_seen,
            "train_loss": num(p.train_loss),
            "val_loss": num(p.val_loss),
            "best_val_loss": num(p.best_val_loss),
            "best_step": p.best_step,
            "stop_reason": p.stop_reason or None,
            "val_held_out": self.split.held_out,
            "train_chars": len(self.split.train),
            "val_chars": int(self.val_blocks.numel()),
            "parameters": self.model.num_parameters(),
            "bf16": self.bf16,
            **self.corpus_info,
        }

    def _save(self, *, improved: bool) -> None:
        p = self.progress
        weights = self.model.state_dict() if improved or not self._has_best else None
        checkpoint.save(
            self.directory,
            model_config=self.model_config,
            train_config=self.config.to_dict(),
            vocab=self.vocab,
            summary=self._summary(),
            weights=weights,
            resume=self._resume_tensors(),
            resume_meta={
                "step": p.step,
                "epoch": p.epoch,
                "offset": p.offset,
                "window": p.window,
                "elapsed_s": p.elapsed_s,
                "chars_seen": p.chars_seen,
                "train_loss": p.train_loss if math.isfinite(p.train_loss) else None,
                "val_loss": p.val_loss if math.isfinite(p.val_loss) else None,
                "best_val_loss": p.best_val_loss if math.isfinite(p.best_val_loss) else None,
                "best_step": p.best_step,
                "evals_since_best": p.evals_since_best,
                "has_state": self.state is not None,
            },
        )
        self._has_best = True
        self._saved_step = p.step

    def _resume_tensors(self) -> dict[str, torch.Tensor]:
        tensors: dict[str, torch.Tensor] = {
            f"model.{k}": v for k, v in self.model.state_dict().items()
        }
        for index, slots in self.optimizer.state_dict()["state"].items():
            for key, value in slots.items():
                tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
        if self.state is not None:
            tensors["state.h"], tensors["state.c"] = self.state
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.data"] = self.data_rng.get_state()
        return tensors

    def _restore(self, ckpt: checkpoint.Checkpoint) -> None:
        meta = ckpt.resume_meta
        if meta is None:
            raise ConfigError(f"{ckpt.path}: checkpoint has no resume state")
        tensors = ckpt.load_resume()
        try:
            self.model.load_state_dict(
                {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
            )
            opt_state = self.optimizer.state_dict()
            slots: dict[int, dict[str, torch.Tensor]] = {}
            for key, value in tensors.items():
                if key.startswith("optim."):
                    _, index, name = key.split(".", 2)
                    slots.setdefault(int(index), {})[name] = value
            opt_state["state"] = slots
            self.optimizer.load_state_dict(opt_state)
            torch.set_rng_state(tensors["rng.torch"])
            self.data_rng.set_state(tensors["rng.data"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise IncompatibleCheckpointError(
                f"{ckpt.path}: resume state does not fit this model ({e})"
            ) from e
        self.state = (
            (tensors["state.h"].to(self.device), tensors["state.c"].to(self.device))
            if meta.get("has_state")
            else None
        )
        p = self.progress
        p.step = int(meta["step"])
        p.epoch = int(meta["epoch"])
        p.offset = int(meta["offset"])
        p.window = int(meta["window"])
        p.elapsed_s = float(meta["elapsed_s"])
        p.chars_seen = int(meta["chars_seen"])
        p.train_loss = _num(meta.get("train_loss"), math.nan)
        p.val_loss = _num(meta.get("val_loss"), math.nan)
        p.best_val_loss = _num(meta.get("best_val_loss"), math.inf)
        p.best_step = int(meta["best_step"])
        p.evals_since_best = int(meta["evals_since_best"])
        if p.window >= len(self.streams.window_starts(p.offset)):
            raise ConfigError(
                f"{ckpt.path}: the corpus is laid out differently than when this checkpoint "
                "was written; resume needs the same corpus and batch settings"
            )


def _num(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default
