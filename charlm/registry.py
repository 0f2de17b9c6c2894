"""A directory of checkpoints served by name, kept in step with the disk.

Each subdirectory of the checkpoints directory that holds a checkpoint is a model,
named after the directory. Models load once and are reloaded when their
`checkpoint.json` changes (training writes it last, atomically), so a freshly trained
or retrained model is served without a restart.

A checkpoint that fails to load is that model's error alone: it is listed under
`errors()` (named by the model's name, never by a path on the server), and every other
model, the listing and start-up go on. The failure is remembered until the directory's
files change, so a broken model is not read again on every request.

Model names follow the one rule of `charlm.names`: a name that breaks it (anything that
could leave the directory, '../x', '/etc', 'a/b', included) is refused before the disk
is touched, and a checkpoint directory whose name breaks it ('my notes', '.hidden',
'café') is not served but listed under `errors()` too, keyed by its name as `names.shown`
escapes it, with the name to rename it to. Every file a checkpoint names must resolve
inside the checkpoints directory (a symlink out of it is refused). A directory holding
no checkpoint is not a model and is ignored.

Safe to use from many threads; a reload swaps in a new `Predictor` while calls already
running finish on the old one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from charlm import checkpoint
from charlm.errors import (
    AmbiguousModelError,
    CharLMError,
    CheckpointError,
    IncompatibleCheckpointError,
    NoModelError,
    UnknownModelError,
)
from charlm.inference import Predictor
from charlm.names import NAME_PATTERN, RULE, check_name, is_servable, servable_name, shown

__all__ = ["NAME_PATTERN", "LoadedModel", "ModelRegistry", "RefreshReport", "check_name"]

log = logging.getLogger(__name__)

Stamp = tuple[int, ...]


@dataclass(frozen=True)
class LoadedModel:
    name: str
    predictor: Predictor
    stamp: Stamp  # of checkpoint.json when loaded
    loaded_at: float


@dataclass
class RefreshReport:
    loaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Failure:
    error: CharLMError
    stamp: Stamp  # of the whole directory when it failed


class ModelRegistry:
    def __init__(self, directory: str | Path, device: str = "cpu") -> None:
        self.directory = Path(directory)
        self.device = device
        self._models: dict[str, LoadedModel] = {}
        self._failures: dict[str, _Failure] = {}
        self._misnamed: dict[str, str] = {}  # as of the last refresh, by shown name
        self._lock = threading.RLock()

    # -- queries ----------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._models)

    def models(self) -> list[LoadedModel]:
        return [m for m in (self._models.get(n) for n in self.names()) if m is not None]

    def errors(self) -> dict[str, str]:
        """Why each checkpoint that is not served is not: by model name for one that
        failed to load, by escaped directory name (`names.shown`) for a misnamed one."""
        failed = {name: str(f.error) for name, f in self._failures.items()}
        return dict(sorted({**failed, **self._misnamed}.items()))

    def get(self, name: str | None) -> LoadedModel:
        """The model called `name`, or the only one when `name` is None."""
        return self.peek(name) or self._load(name)

    def peek(self, name: str | None) -> LoadedModel | None:
        """`get` without loading: None when the model must be (re)loaded from disk first.

        Cheap (a few `stat`s), so an event loop may call it; `get` does the loading. A
        remembered failure whose files have not changed is raised again here.
        """
        name = self._resolve(name)
        current = self._models.get(name)
        here = os.path.join(self.directory, name)
        if current is not None and current.stamp == _manifest_stamp(here):
            return current
        failed = self._failures.get(name)
        if (
            current is None
            and failed is not None
            and failed.stamp == _dir_stamp(self.directory / name)
        ):
            raise failed.error
        return None

    def _load(self, name: str | None) -> LoadedModel:
        name = self._resolve(name)
        with self._lock:
            return self._sync(name)

    def _resolve(self, name: str | None) -> str:
        if name is None:
            names = self.names()
            if not names:
                unserved = len(self._failures) + len(self._misnamed)
                why = f" ({unserved} checkpoint(s) not served; GET /models lists why)"
                raise NoModelError(
                    "no model is loaded; train one into the checkpoints directory"
                    + (why if unserved else "")
                )
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
            try:
                entries = sorted(self.directory.iterdir()) if self.directory.is_dir() else []
            except OSError as e:
                log.warning("cannot list the checkpoints directory: %s", e)
                entries = []
            misnamed: dict[str, str] = {}
            taken = {sub.name for sub in entries}
            for sub in entries:
                if not checkpoint.exists(sub):
                    continue  # not a model
                if is_servable(sub.name):
                    on_disk.add(sub.name)
                else:
                    key = shown(sub.name)
                    while key in misnamed:  # two long names alike up to the cut
                        key += "+"
                    misnamed[key] = _misnamed_reason(sub.name, taken)
            self._misnamed = misnamed
            report.errors.update(misnamed)
            for name in sorted(on_disk | set(self._models) | set(self._failures)):
                before = self._models.get(name)
                try:
                    after: LoadedModel | None = self._sync(name)
                except CharLMError:
                    after = self._models.get(name)
                if after is None and before is not None:
                    report.removed.append(name)
                elif after is not None and after is not before:
                    report.loaded.append(name)
                if name in self._failures:
                    report.errors[name] = str(self._failures[name].error)
        return report

    def _sync(self, name: str) -> LoadedModel:
        """Bring `name` in line with the disk (caller holds the lock)."""
        path = self.directory / name
        for attempt in range(3):
            stamp = _manifest_stamp(path)
            current = self._models.get(name)
            if stamp is None:
                self._models.pop(name, None)
                self._failures.pop(name, None)
                known = ", ".join(self.names()) or "none"
                raise UnknownModelError(f"unknown model {name!r}; loaded models: {known}")
            if current is not None and current.stamp == stamp:
                return current
            failed = self._failures.get(name)
            dir_stamp = _dir_stamp(path)
            if failed is not None and failed.stamp == dir_stamp:
                if current is not None:
                    return current
                raise failed.error
            try:
                self._confined(path)
                predictor = Predictor.from_checkpoint(path, self.device, name=name)
            except (CharLMError, OSError, MemoryError, RecursionError, ValueError) as e:
                if _manifest_stamp(path) != stamp and attempt < 2:
                    continue  # rewritten while we read it: read the new one
                error = _load_error(name, e)
                self._failures[name] = _Failure(error, dir_stamp)
                log.warning("model %s: %s", name, e)
                if current is not None:
                    return current  # keep serving the last good version
                raise error from e
            loaded = LoadedModel(name, predictor, stamp, time.time())
            self._models[name] = loaded
            self._failures.pop(name, None)
            log.info("loaded model %s", name)
            return loaded
        raise AssertionError("unreachable")

    def _confined(self, path: Path) -> None:
        """Refuse a checkpoint whose files resolve outside the checkpoints directory."""
        root = self.directory.resolve()
        try:
            entries = [path, *path.iterdir()]
        except OSError as e:
            raise IncompatibleCheckpointError(f"{path.name}: cannot be listed") from e
        for entry in entries:
            if not entry.resolve().is_relative_to(root):
                shown = path.name if entry == path else f"{path.name}/{entry.name}"
                raise IncompatibleCheckpointError(
                    f"{shown}: is a link out of the checkpoints directory; refusing to read it"
                )


def _load_error(name: str, e: Exception) -> CheckpointError:
    """The error a failed load is answered with: a checkpoint error, naming no path."""
    if isinstance(e, CheckpointError):
        return e
    if isinstance(e, CharLMError):
        return IncompatibleCheckpointError(str(e))
    return IncompatibleCheckpointError(f"{name}: cannot be loaded ({type(e).__name__})")


def _misnamed_reason(name: str, taken: set[str]) -> str:
    """Why the checkpoint directory `name` is not served, and what to do about it."""
    better = servable_name(name)
    todo = (
        f"rename it to one that is ({better} is taken)"
        if better in taken
        else f"rename it to {better} to serve it"
    )
    return f"the directory's name is not a model name ({RULE}); {todo}"


def _manifest_stamp(path: str | Path) -> Stamp | None:
    # os.path, not pathlib: `peek` asks once per request, on the event loop.
    try:
        st = os.stat(os.path.join(path, checkpoint.MANIFEST))
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino, st.st_size)


def _dir_stamp(path: Path) -> Stamp:
    """Changes whenever a file in the directory is added, removed, renamed or rewritten
    in place (for the manifest)."""
    try:
        d = path.stat()
    except OSError:
        return ()
    return (d.st_mtime_ns, d.st_ino, *(_manifest_stamp(path) or ()))
