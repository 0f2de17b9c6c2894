"""A directory of checkpoints served by name, kept in step with the disk.

Each subdirectory of the checkpoints directory that holds a checkpoint is a model,
named after the directory. Models load once and are reloaded when their
`checkpoint.json` changes (training writes it last, atomically), so a freshly trained
or retrained model is served without a restart. Names must be plain directory names:
anything that could leave the directory ('../x', '/etc', 'a/b') is refused before the
disk is touched. Safe to use from many threads; a reload swaps in a new `Predictor`
while calls already running finish on the old one.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from charlm import checkpoint
from charlm.errors import (
    AmbiguousModelError,
    CharLMError,
    ModelNameError,
    NoModelError,
    UnknownModelError,
)
from charlm.inference import Predictor

__all__ = ["NAME_PATTERN", "LoadedModel", "ModelRegistry", "RefreshReport"]

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    path: Path
    predictor: Predictor
    stamp: tuple[int, int]  # (mtime_ns, inode) of checkpoint.json when loaded
    loaded_at: float


@dataclass
class RefreshReport:
    loaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


class ModelRegistry:
    def __init__(self, directory: str | Path, device: str = "cpu") -> None:
        self.directory = Path(directory)
        self.device = device
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.RLock()

    # -- queries ----------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._models)

    def models(self) -> list[LoadedModel]:
        return [self._models[n] for n in self.names()]

    def errors(self) -> dict[str, str]:
        return dict(self._errors)

    def get(self, name: str | None) -> LoadedModel:
        """The model called `name`, or the only one when `name` is None."""
        return self.peek(name) or self._load(name)

    def peek(self, name: str | None) -> LoadedModel | None:
        """`get` without loading: None when the model must be (re)loaded from disk first.

        Cheap (one `stat`), so an event loop may call it; `get` does the loading.
        """
        name = self._resolve(name)
        current = self._models.get(name)
        if current is not None and current.stamp == _stamp(self.directory / name):
            return current
        return None

    def _load(self, name: str | None) -> LoadedModel:
        name = self._resolve(name)
        with self._lock:
            return self._sync(name)

    def _resolve(self, name: str | None) -> str:
        if name is None:
            names = self.names()
            if not names:
                raise NoModelError(f"no model is loaded; train one into {self.directory}")
            if len(names) > 1:
                raise AmbiguousModelError(
                    f"several models are loaded ({', '.join(names)}); name one with 'model'"
                )
            name = names[0]
        check_name(name)
        return name

    # -- changes ----------------------------------------------------------------

    def refresh(self) -> RefreshReport:
        """Load new and changed checkpoints, drop vanished ones."""
        report = RefreshReport()
        with self._lock:
            on_disk = set()
            if self.directory.is_dir():
                for sub in sorted(self.directory.iterdir()):
                    if NAME_PATTERN.fullmatch(sub.name) and checkpoint.exists(sub):
                        on_disk.add(sub.name)
            for name in sorted(on_disk | set(self._models) | set(self._errors)):
                before = self._models.get(name)
                try:
                    after = self._sync(name)
                except CharLMError:
                    after = None
                if after is None and before is not None:
                    report.removed.append(name)
                elif after is not None and after is not before:
                    report.loaded.append(name)
                if name in self._errors:
                    report.errors[name] = self._errors[name]
        return report

    def _sync(self, name: str) -> LoadedModel:
        """Bring `name` in line with the disk (caller holds the lock)."""
        path = self.directory / name
        for attempt in range(3):
            stamp = _stamp(path)
            current = self._models.get(name)
            if stamp is None:
                self._models.pop(name, None)
                self._errors.pop(name, None)
                known = ", ".join(self.names()) or "none"
                raise UnknownModelError(f"unknown model {name!r}; loaded models: {known}")
            if current is not None and current.stamp == stamp:
                return current
            try:
                predictor = Predictor.from_checkpoint(path, self.device)
            except CharLMError as e:
                if _stamp(path) != stamp and attempt < 2:
                    continue  # rewritten while we read it: read the new one
                self._errors[name] = str(e)
                log.warning("model %s: %s", name, e)
                if current is not None:
                    return current  # keep serving the last good version
                raise
            loaded = LoadedModel(name, path, predictor, stamp, time.time())
            self._models[name] = loaded
            self._errors.pop(name, None)
            log.info("loaded model %s from %s", name, path)
            return loaded
        raise AssertionError("unreachable")


def check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise ModelNameError(
            f"invalid model name {name!r}: use the name of a checkpoint directory "
            "(letters, digits, '.', '_', '-')"
        )


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = (path / checkpoint.MANIFEST).stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino)
