"""The fields a row of a training log carries, and the names in a log read as each: one
table of synonyms (`FIELDS`) for the columns of a CSV file, the keys of a JSON row and
the names in a printed line alike. Names are compared once `normalize`d."""

from __future__ import annotations

import re

__all__ = ["FIELDS", "by_field", "name_of", "normalize", "read_as"]

FIELDS: dict[str, tuple[str, ...]] = {
    "step": ("step", "global_step", "steps", "trainer_global_step", "total_steps", "n_iter"),
    "epoch": ("epoch", "epochs"),
    "iteration": ("iteration", "iter", "iters", "itr", "batch", "batch_idx", "batch_index"),
    "loss": (
        "loss", "train_loss", "training_loss", "train_loss_step", "loss_step", "trn_loss",
        "error", "err", "train_error", "cost", "train_cost", "objective", "value",
        "train_loss_epoch", "loss_epoch",
    ),
    "val_loss": (
        "val_loss", "valid_loss", "validation_loss", "eval_loss", "dev_loss", "val_error",
        "val_cost", "val_loss_epoch", "test_loss",
    ),
    "accuracy": (
        "accuracy", "acc", "train_acc", "train_accuracy", "training_accuracy",
        "train_acc_step", "categorical_accuracy", "sparse_categorical_accuracy",
        "binary_accuracy", "train_acc_epoch",
    ),
    "val_accuracy": (
        "val_accuracy", "val_acc", "valid_acc", "valid_accuracy", "validation_accuracy",
        "eval_accuracy", "eval_acc", "dev_acc", "val_categorical_accuracy",
        "val_sparse_categorical_accuracy", "val_binary_accuracy", "test_acc",
        "test_accuracy",
    ),
    "grad_norm": ("grad_norm", "gradient_norm", "grad_norm_total", "gnorm", "total_norm"),
    "lr": ("lr", "learning_rate", "lr_adam", "lr_adamw", "lr_sgd"),
}  # fmt: skip
"""For each field a row carries, the names (normalized) read as it, in order of preference."""
_FIELD_OF = {name: f for f, names in FIELDS.items() for name in names}
_VALIDATION = ("val", "valid", "validation", "eval", "dev", "test")
"""Words that make a printed name a validation one (`val loss`, `test acc`)."""


def normalize(name: str) -> str:
    """A column name as it is matched: lower case, each run of other characters than
    letters and digits one `_` (`train/loss` -> `train_loss`, `lr-Adam` -> `lr_adam`)."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def read_as(name: str) -> str | None:
    """The field a column (a key) of this name is read as, if any."""
    return _FIELD_OF.get(normalize(name))


def by_field(names: list[str]) -> dict[str, str]:
    """field -> the name read as it, of `names` (normalized): the first in `FIELDS`'s
    order of preference."""
    present = set(names)
    chosen = {}
    for f, synonyms in FIELDS.items():
        name = next((n for n in synonyms if n in present), None)
        if name is not None:
            chosen[f] = name
    return chosen


def name_of(words: list[str]) -> str | None:
    """The field a printed name (a run of words) is read as: the whole name, else its
    last word that is a field's name (a validation one after `val`, `test`, ...).
    `value` alone, a column of TensorBoard's exports, is no field in a printed line."""
    whole = read_as("_".join(words))
    if whole is not None and words != ["value"]:
        return whole
    for i in range(len(words) - 1, -1, -1):
        f = read_as(words[i]) if normalize(words[i]) != "value" else None
        if f is not None:
            validation = any(normalize(w) in _VALIDATION for w in words[:i])
            return f"val_{f}" if validation and f"val_{f}" in FIELDS else f
    return None
