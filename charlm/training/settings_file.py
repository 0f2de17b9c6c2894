"""Settings files: a flat TOML file of model and training settings, read and written.

`charlm train --config FILE` reads one, and `charlm sweep` writes the best trial's
settings as one (`best.toml`). Its keys are the field names of `ModelConfig` (but
`vocab_size`, which the corpus decides) and of `TrainConfig`, plus optionally `preset`:

    # charlm train corpora/notes.txt --config best.toml
    preset = "small"
    hidden_size = 128
    lr = 0.003

Each value is checked here as its config checks it, so a bad file fails before any
training starts, with a `ConfigError` naming the file and the key (or, for malformed
TOML, the line). The file must be a regular file of at most `MAX_SETTINGS_BYTES`,
nested at most `MAX_SETTINGS_DEPTH` deep (`charlm.files`). This module owns the file
format only: which values win over which (the command line's flags over the file) is the
caller's choice.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from charlm import files
from charlm.checkpoint.tensors import atomic_write_bytes
from charlm.errors import ConfigError
from charlm.model import ModelConfig
from charlm.train_config import TrainConfig
from charlm.training.presets import PRESETS

__all__ = [
    "MAX_SETTINGS_BYTES",
    "MAX_SETTINGS_DEPTH",
    "MODEL_SETTINGS",
    "TRAIN_SETTINGS",
    "Settings",
    "check_setting",
    "read_settings",
    "setting_kind",
    "settings_text",
    "write_settings",
]

MODEL_SETTINGS = tuple(f.name for f in fields(ModelConfig) if f.name != "vocab_size")
"""The model settings a file may hold."""
TRAIN_SETTINGS = tuple(f.name for f in fields(TrainConfig))
"""The training settings a file may hold."""
MAX_SETTINGS_BYTES = 2**20
"""The largest settings file read: a few dozen short lines are a few KB."""
MAX_SETTINGS_DEPTH = 4
"""Deepest nesting read (the file's own table counts 1; a valid file has no other)."""
_SETTINGS_FILES = files.FileKind("settings files", MAX_SETTINGS_BYTES, ConfigError)

_TYPES = {f.name: str(f.type).removesuffix(" | None") for f in fields(ModelConfig)} | {
    f.name: str(f.type).removesuffix(" | None") for f in fields(TrainConfig)
}


@dataclass(frozen=True)
class Settings:
    """What a settings file holds: model and training overrides, and a preset name."""

    model: dict[str, Any]
    train: dict[str, Any]
    preset: str | None = None


def setting_kind(name: str) -> str:
    """'int', 'float' or 'str': the type of the setting `name` (a ModelConfig or
    TrainConfig field)."""
    return _TYPES[name]


def check_setting(name: str, value: object, where: str) -> int | float | str:
    """`value` as the setting `name` takes it (an integer given for a float becomes a
    float), checked as its config checks it; else a ConfigError starting with `where`."""
    kind = setting_kind(name)
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value  # type: ignore[arg-type]
    else:
        ok = isinstance(value, str)
    if not ok:
        shown = "a table" if isinstance(value, dict) else type(value).__name__
        raise ConfigError(f"{where}: {name} must be {_ARTICLE[kind]}, got {shown}")
    try:
        if name in MODEL_SETTINGS:
            ModelConfig(vocab_size=1, **{name: value})  # type: ignore[arg-type]
        else:
            TrainConfig(**{name: value})  # type: ignore[arg-type]
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from e
    assert isinstance(value, int | float | str)
    return value


_ARTICLE = {"int": "an integer", "float": "a number", "str": "a string"}


def read_settings(path: str | Path) -> Settings:
    """The settings in the TOML file at `path`, each checked; ConfigError for a file that
    cannot be read, malformed TOML, an unknown key or a bad value."""
    p = Path(path)
    what = f"settings file {p}"
    raw = files.read_regular(p, what, _SETTINGS_FILES)
    try:
        text = raw.decode("utf-8")
        data = files.loads_toml(text, what, _SETTINGS_FILES, MAX_SETTINGS_DEPTH)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what}: not UTF-8 text") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{what}: not valid TOML: {e}") from e
    known = {*MODEL_SETTINGS, *TRAIN_SETTINGS, "preset"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"settings file {p}: unknown key{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; the keys are ModelConfig and TrainConfig fields "
            "(see `charlm train --help`, dashes as underscores) and preset"
        )
    preset = data.get("preset")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(
            f"settings file {p}: preset must be one of {', '.join(PRESETS)}, got {preset!r}"
        )
    where = f"settings file {p}"
    model = {k: check_setting(k, data[k], where) for k in MODEL_SETTINGS if k in data}
    train = {k: check_setting(k, data[k], where) for k in TRAIN_SETTINGS if k in data}
    return Settings(model=model, train=train, preset=preset)


def write_settings(
    path: str | Path,
    model: Mapping[str, Any],
    train: Mapping[str, Any],
    comment: str = "",
    *,
    preset: str | None = None,
) -> Path:
    """Write `settings_text(model, train, comment, preset=preset)` to `path`, replacing
    it atomically."""
    p = Path(path)
    text = settings_text(model, train, comment, preset=preset)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(p, text.encode("utf-8"))
    return p


def settings_text(
    model: Mapping[str, Any],
    train: Mapping[str, Any],
    comment: str = "",
    *,
    preset: str | None = None,
) -> str:
    """A settings file that `read_settings` (and `charlm train --config`) reads back as
    these values; `comment` goes first, each of its lines after `# `. Settings whose
    value is None are left out (TOML has no null; a missing key means the default)."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    if preset is not None:
        lines.append(f"preset = {_toml_value(preset)}")
    for name, value in (*model.items(), *train.items()):
        if name not in MODEL_SETTINGS and name not in TRAIN_SETTINGS:
            raise ConfigError(f"{name} is not a model or training setting")
        if value is not None:
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # '0.003', '1e-05': both TOML floats
    if isinstance(value, str):
        # A TOML basic string: JSON's escapes (of non-surrogates) are a subset of TOML's.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    raise ConfigError(f"cannot write {type(value).__name__} {value!r} to a settings file")
