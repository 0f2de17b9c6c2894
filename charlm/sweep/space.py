"""The search space of a sweep: which settings vary, over what, and which stay fixed.

A space file is TOML. Each key is a setting (a `ModelConfig` or `TrainConfig` field, as
in a settings file). A table searches that setting; a plain value fixes it for every
trial; `preset` picks the preset the trials start from:

    lr = { low = 1e-4, high = 1e-1, log = true }   # log-uniform between low and high
    dropout = { low = 0.0, high = 0.5 }            # uniform
    hidden_size = { choices = [64, 128, 256] }     # one of these
    num_layers = { low = 1, high = 3 }             # an integer setting: an integer range
    eval_interval = 50                             # fixed
    preset = "small"

Every value is checked as the config checks it, so a bad space fails before the first
trial, with a `ConfigError` naming the file and the key; the file must be a regular file
of at most `MAX_SPACE_BYTES`, nested at most `MAX_SPACE_DEPTH` deep. `max_minutes`
cannot be set here: `charlm sweep --minutes-per-trial` gives it. `DEFAULT_SPACE` is the
space used without `--space`. This module only describes and draws settings; running
trials is `study`'s.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from charlm import files
from charlm.errors import ConfigError
from charlm.training.presets import PRESETS
from charlm.training.settings_file import (
    MODEL_SETTINGS,
    TRAIN_SETTINGS,
    check_setting,
    setting_kind,
)

__all__ = [
    "DEFAULT_SPACE",
    "DEFAULT_SPACE_TOML",
    "MAX_SPACE_BYTES",
    "MAX_SPACE_DEPTH",
    "Param",
    "Space",
    "parse_space",
    "read_space",
]

Value = int | float | str

MAX_SPACE_BYTES = 2**20
"""The largest space file read: a space of every setting is about 2 KB."""
MAX_SPACE_DEPTH = 4
"""Deepest nesting read: the file's table, a setting's table, its `choices` list (3)."""
_SPACE_FILES = files.FileKind("space files", MAX_SPACE_BYTES, ConfigError)

DEFAULT_SPACE_TOML = """\
lr = { low = 1e-4, high = 1e-1, log = true }
hidden_size = { choices = [64, 128, 256, 512] }
dropout = { low = 0.0, high = 0.5 }
seq_len = { choices = [32, 64, 128, 256] }
batch_size = { choices = [16, 32, 64] }
weight_decay = { low = 1e-5, high = 1e-1, log = true }
"""
"""The space `charlm sweep` searches without `--space` (docs/scaling.md, "Sweeps")."""

_SET_BY_SWEEP = {"max_minutes": "--minutes-per-trial"}


@dataclass(frozen=True)
class Param:
    """One searched setting: `choices`, or a range from `low` to `high` (`log`: drawn
    log-uniformly; an integer setting draws integers)."""

    name: str
    choices: tuple[Value, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False

    @property
    def is_int_range(self) -> bool:
        return not self.choices and setting_kind(self.name) == "int"

    def suggest(self, trial: optuna.Trial) -> Value:
        if self.choices:
            choice = trial.suggest_categorical(self.name, self.choices)
            assert choice is not None  # a choice is never None: TOML has no null
            return choice
        if self.is_int_range:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.choices:
            return f"{self.name}: one of {', '.join(map(str, self.choices))}"
        how = "log-uniform" if self.log else "uniform"
        kind = " integer" if self.is_int_range else ""
        return f"{self.name}: {how}{kind} from {self.low:g} to {self.high:g}"


@dataclass(frozen=True)
class Space:
    """The searched settings, the fixed ones, and the preset the trials start from."""

    params: tuple[Param, ...]
    fixed: Mapping[str, Value]
    preset: str | None = None

    def suggest(self, trial: optuna.Trial) -> tuple[dict[str, Any], dict[str, Any]]:
        """One trial's settings, drawn: (model overrides, training overrides)."""
        values: dict[str, Any] = dict(self.fixed)
        for param in self.params:
            values[param.name] = param.suggest(trial)
        model = {k: v for k, v in values.items() if k in MODEL_SETTINGS}
        train = {k: v for k, v in values.items() if k in TRAIN_SETTINGS}
        return model, train


def read_space(path: str | Path) -> Space:
    """The space in the TOML file at `path`; ConfigError naming the file and the key for
    a file that cannot be read or a bad entry."""
    p = Path(path)
    what = f"space file {p}"
    try:
        text = files.read_regular(p, what, _SPACE_FILES).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what}: not UTF-8 text") from e
    return parse_space(text, what)


def parse_space(text: str, what: str = "space") -> Space:
    """The space in the TOML `text`; `what` starts every error message."""
    try:
        data = files.loads_toml(text, what, _SPACE_FILES, MAX_SPACE_DEPTH)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what}: not valid TOML: {e}") from e
    params: list[Param] = []
    fixed: dict[str, Value] = {}
    preset = data.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"{what}: preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    for name, entry in data.items():
        if name in _SET_BY_SWEEP:
            raise ConfigError(
                f"{what}: {name} is set by `charlm sweep {_SET_BY_SWEEP[name]}`, not the space"
            )
        if name not in MODEL_SETTINGS and name not in TRAIN_SETTINGS:
            raise ConfigError(
                f"{what}: unknown setting {name}; a space's keys are ModelConfig and "
                "TrainConfig fields (see `charlm train --help`, dashes as underscores) and preset"
            )
        if isinstance(entry, dict):
            params.append(_param(name, entry, f"{what}, {name}"))
        else:
            fixed[name] = check_setting(name, entry, what)
    if not params:
        raise ConfigError(f"{what}: searches nothing; give at least one setting a table")
    return Space(params=tuple(params), fixed=fixed, preset=preset)


def _param(name: str, entry: dict[str, Any], where: str) -> Param:
    keys = set(entry)
    if "choices" in keys:
        if keys != {"choices"}:
            raise ConfigError(f"{where}: choices goes alone (not with {_others(keys, 'choices')})")
        choices = entry["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        checked = tuple(check_setting(name, c, where) for c in choices)
        if len(set(checked)) != len(checked):
            raise ConfigError(f"{where}: choices has duplicates")
        return Param(name, choices=checked)
    if keys - {"low", "high", "log"} or not {"low", "high"} <= keys:
        raise ConfigError(
            f"{where}: give choices = [...], or low and high (and optionally log = true); "
            f"got {', '.join(sorted(keys)) or 'an empty table'}"
        )
    kind = setting_kind(name)
    if kind == "str":
        raise ConfigError(f"{where}: a text setting takes choices = [...], not a range")
    low = check_setting(name, entry["low"], f"{where}, low")
    high = check_setting(name, entry["high"], f"{where}, high")
    assert isinstance(low, int | float) and isinstance(high, int | float)
    log = entry.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false")
    if not low < high:
        raise ConfigError(f"{where}: low ({low:g}) must be below high ({high:g})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low:g}")
    return Param(name, low=low, high=high, log=log)


def _others(keys: set[str], key: str) -> str:
    return ", ".join(sorted(keys - {key}))


DEFAULT_SPACE = parse_space(DEFAULT_SPACE_TOML, "the default space")
