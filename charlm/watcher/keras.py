"""`WatchCallback`: the watcher fed by Keras's `model.fit`, on Keras's torch backend.

    import charlm.watcher.keras                       # after KERAS_BACKEND=torch

    watch = charlm.watcher.keras.WatchCallback(y=train_ys, validation_split=0.2)
    model.fit(train_xs, train_ys, validation_split=0.2, callbacks=[watch])
    watch.watcher.findings                            # the same as `charlm.watch` gives

On the torch backend a Keras model is a `torch.nn.Module` and each of its variables
holds a `torch.nn.Parameter`, so the watcher's torch hooks see the gradients Keras's
`loss.backward()` leaves (named by the variables' paths, `dense/kernel`), and every
softmax a layer computes (`Dense(activation="softmax")` calls torch's). Keras's optimizer
is not a torch optimizer: a step is a training batch, ended from the callback with the
batch's own loss (not the epoch's running mean Keras logs), and the epoch's metrics
(`accuracy`, `val_loss`, `val_accuracy`, ...) go with its last batch. The labels, given
as `fit` is given them, are split the way Keras splits them (`validation_split`: the
last examples as they are, before any shuffling) and handed to `Watcher.split`. At the
end of training the report is printed to standard error and the watcher closed.
Keras's recurrent layers run their own loop, not an `nn.LSTM`: their gates are not read.

This module imports Keras, and nothing else in charlm does: without Keras, or on another
backend, importing it raises a `ConfigError` that says what to install or set.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

from charlm.errors import ConfigError
from charlm.watcher import softmaxes
from charlm.watcher.watcher import STDERR, Watcher

__all__ = ["WatchCallback"]


def _backend_error(backend: str, why: str) -> ConfigError:
    return ConfigError(
        f"charlm's Keras callback needs Keras's torch backend (its hooks are torch hooks); "
        f"the backend is {backend}, and Keras {why}: set the environment variable "
        "KERAS_BACKEND=torch before anything imports keras (`export KERAS_BACKEND=torch`, "
        "or `os.environ['KERAS_BACKEND'] = 'torch'` at the top of the script)"
    )


try:
    import keras
except ImportError as error:
    if importlib.util.find_spec("keras") is None:
        raise ConfigError(
            "charlm's Keras callback needs Keras 3 on its torch backend, and Keras is not "
            "installed: `pip install 'charlm[keras]'` (or `pip install 'keras>=3'`), then "
            "set KERAS_BACKEND=torch before anything imports keras"
        ) from None
    chosen = os.environ.get("KERAS_BACKEND", "as ~/.keras/keras.json says, tensorflow by default")
    raise _backend_error(chosen, f"could not be imported there ({error})") from None

if int(keras.__version__.split(".")[0]) < 3:
    raise ConfigError(
        f"charlm's Keras callback needs Keras 3 (this is Keras {keras.__version__}): "
        "`pip install 'keras>=3'`"
    )
if keras.backend.backend() != "torch":
    raise _backend_error(keras.backend.backend(), "was imported on another one")

softmaxes.skip_frames_in(str(Path(keras.__file__).parent))


class WatchCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """A `charlm.watch` watcher over a Keras model's training, as a `fit` callback.

    The labels, for the rules that compare the training and validation sets, in one of
    three ways: `y` (what `fit` is given) with the `validation_split` or the
    `validation_data` that `fit` is given (the same arguments; as in `fit`,
    `validation_data` wins over `validation_split`); or `train_labels` and `val_labels`
    as they are. Labels are class ids (any shape: they are counted), or one-hot rows
    (float rows summing to 1, read as their largest column).

    `log`: a JSON Lines file of every step and finding (`charlm diagnose --log` reads
    it); `echo`: where findings are printed as they fire (None: nowhere); `report`:
    print the diagnosis to standard error when training ends. `watcher`: the
    `Watcher` of the latest `fit` (None before the first), open while it trains and
    closed when training ends; its `findings` and `report()` still answer then. Keras
    ends no training that raises: then `watcher.close()` removes the hooks (the next
    `fit` with this callback does too).
    """

    def __init__(
        self,
        y: Any = None,
        validation_split: float = 0.0,
        validation_data: Any = None,
        *,
        train_labels: Any = None,
        val_labels: Any = None,
        log: str | Path | None = None,
        echo: IO[str] | None = STDERR,
        report: bool = True,
        name: str = "model.fit",
    ) -> None:
        super().__init__()
        if not 0.0 <= validation_split < 1.0:
            raise ConfigError(
                f"validation_split={validation_split}: it must be at least 0 and below 1, "
                "the share of examples Keras keeps for validation"
            )
        if y is not None and (train_labels is not None or val_labels is not None):
            raise ConfigError(
                "give the labels either as `y` (with `validation_split` or "
                "`validation_data`, as `fit` takes them) or as `train_labels` and "
                "`val_labels`, not both"
            )
        if (validation_split or validation_data is not None) and y is None:
            raise ConfigError(
                "`validation_split` and `validation_data` split the labels `y`: give "
                "`y` too (the labels `fit` is given)"
            )
        self.train_labels: np.ndarray[Any, Any] | None = None
        self.val_labels: np.ndarray[Any, Any] | None = None
        if y is not None:
            self.train_labels, self.val_labels = _split(y, validation_split, validation_data)
        else:
            self.train_labels = None if train_labels is None else _labels(train_labels)
            self.val_labels = None if val_labels is None else _labels(val_labels)
        self.log = log
        self.echo = echo
        self.print_report = report
        self.name = name
        self.watcher: Watcher | None = None
        self._holding = False  # a batch has ended and is not a step yet
        self._held: float | None = None  # its loss
        self._tracked = (0.0, 0.0)  # the loss tracker's (total, count) after that batch

    # -- Keras's calls ------------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.watcher is not None:  # a `fit` that raised never ended its training
            self.watcher.close()
        self.watcher = Watcher(
            _parameters(self.model), [], log=self.log, echo=self.echo, name=self.name
        )
        self._holding, self._held = False, None
        if self.train_labels is not None and self.val_labels is not None:
            self.watcher.split(self.train_labels, self.val_labels)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._tracked = _tracker(self.model) or (0.0, 0.0)  # reset by Keras for the epoch

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._flush()  # the previous batch was not the epoch's last

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._flush()
        self._holding, self._held = True, self._batch_loss(logs or {})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = {
            k: float(v)
            for k, v in (logs or {}).items()
            if k != "loss" and isinstance(v, int | float | np.floating | np.integer)
        }
        self._flush(**metrics)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.watcher is None:
            return
        self._flush()
        if self.print_report:
            print(self.watcher.report(), file=sys.stderr, flush=True)
        self.watcher.close()

    # -- steps --------------------------------------------------------------------------

    def _flush(self, **metrics: float) -> None:
        """The held batch becomes the watcher's step, with `metrics` if the epoch ended."""
        if self.watcher is None or not self._holding:
            return
        loss, self._holding, self._held = self._held, False, None
        self.watcher.step(loss, **metrics)

    def _batch_loss(self, logs: dict[str, Any]) -> float | None:
        """This batch's own loss: the growth of Keras's loss tracker (a mean weighted by
        batch size, over the epoch so far) since the last batch; without one, what the
        logs say."""
        now = _tracker(self.model)
        if now is not None:
            (total, count), (before, counted) = now, self._tracked
            self._tracked = now
            if count > counted:
                return (total - before) / (count - counted)
        value = logs.get("loss")
        return float(value) if isinstance(value, int | float | np.floating) else None


def _tracker(model: Any) -> tuple[float, float] | None:
    """(total, count) of the model's loss tracker (`model.metrics`' "loss" mean)."""
    for metric in getattr(model, "metrics", []):
        if metric.name == "loss" and hasattr(metric, "total") and hasattr(metric, "count"):
            return float(metric.total), float(metric.count)
    return None


def _parameters(model: Any) -> nn.Module:
    """A module holding the model's trainable variables' torch parameters, one submodule
    a layer, named by the variables' paths: `rnn/lstm_cell.kernel`. (A Keras model's own
    torch names are all `_torch_params.<path>`, one flat dict for the whole model.)"""
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"the model is a {type(model).__name__}, not a torch module: charlm's Keras "
            "callback needs Keras's torch backend (KERAS_BACKEND=torch)"
        )
    root = nn.Module()
    variables: list[Any] = list(getattr(model, "trainable_variables", []))
    for variable in variables:
        value = variable.value
        if not isinstance(value, nn.Parameter):
            continue
        layer, _, leaf = str(variable.path).rpartition("/")
        layer = layer or str(getattr(model, "name", "model"))
        if layer not in root._modules:
            root.add_module(layer, nn.Module())
        owner = root._modules[layer]
        assert owner is not None
        if leaf not in owner._parameters:
            owner.register_parameter(leaf, value)
    return root


def _split(y: Any, validation_split: float, validation_data: Any) -> tuple[Any, Any]:
    """The training and validation labels, as `fit(y=y, validation_split=...,
    validation_data=...)` splits them."""
    if validation_data is not None:
        if not isinstance(validation_data, Sequence) or len(validation_data) not in (2, 3):
            raise ConfigError(
                "validation_data: give it as `fit` takes it, `(x_val, y_val)` or "
                "`(x_val, y_val, sample_weight)`; for another kind of data give "
                "`train_labels` and `val_labels`"
            )
        return _labels(y), _labels(validation_data[1])
    if not validation_split:
        return _labels(y), None
    rows = _rows(y)
    n = len(rows)
    split_at = math.floor(n * (1.0 - validation_split))  # as Keras computes it
    if split_at in (0, n):
        raise ConfigError(
            f"validation_split={validation_split} of {n} examples leaves one of the two "
            "sets empty (Keras refuses it too)"
        )
    return _labels(rows[:split_at]), _labels(rows[split_at:])


def _rows(y: Any) -> np.ndarray[Any, Any]:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    several = isinstance(y, list | tuple) and y and isinstance(y[0], np.ndarray | torch.Tensor)
    if isinstance(y, dict) or several:
        raise ConfigError(
            "the labels are several arrays (a model of several outputs): give the labels "
            "of one output as `train_labels` and `val_labels`"
        )
    return np.asarray(y)


def _labels(y: Any) -> np.ndarray[Any, Any]:
    """Class ids, flat: one-hot (or probability) rows read as their largest column."""
    rows = _rows(y)
    if rows.ndim >= 2 and rows.shape[-1] > 1 and np.issubdtype(rows.dtype, np.floating):
        sums = rows.sum(axis=-1)
        if rows.min(initial=0.0) >= 0 and np.allclose(sums, 1.0, atol=1e-3):
            rows = rows.argmax(axis=-1)
    if not np.issubdtype(rows.dtype, np.number) or not np.all(np.isfinite(rows)):
        raise ConfigError("the labels must be class ids (numbers) or one-hot rows")
    ids: np.ndarray[Any, Any] = np.rint(rows).astype(np.int64).reshape(-1)
    return ids
