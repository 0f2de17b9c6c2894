"""Shared fixtures: paths, a trained alphabet checkpoint, small trained checkpoints
(each trained once per test run, `once.built_once`)."""

from __future__ import annotations

import compileall
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from charlm import checkpoint
from charlm.data import IdSplit
from charlm.inference import Predictor
from charlm.training import fit
from charlm.vocab import Vocabulary

from . import browsing
from .once import built_once

if TYPE_CHECKING:
    from .serving import Server

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO / "corpora"
SHAKESPEARE = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"


# Markers that say what a test needs; each implies `slow` (see pyproject.toml).
HEAVY_MARKS = ("server", "browser", "distributed", "postgres")
MARK_BY_FIXTURE = {"browser": "browser", "postgres_url": "postgres"}


def pytest_configure(config: pytest.Config) -> None:
    """Compile charlm's and the service's modules once, before any test starts a process:
    where PYTHONDONTWRITEBYTECODE is set, every `python -m charlm` the tests start (servers,
    CLI runs, torchrun ranks, the loops) would otherwise compile them from source again,
    about 0.3 s of CPU each. Not in xdist's workers: the controller has done it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        for package in ("charlm", "service"):
            compileall.compile_dir(REPO / package, quiet=1)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = getattr(item, "fixturenames", ())
        for fixture, mark in MARK_BY_FIXTURE.items():
            if fixture in names:
                item.add_marker(mark)
        if any(item.get_closest_marker(m) for m in HEAVY_MARKS):
            item.add_marker(pytest.mark.slow)


def text_split(
    text: str, vocab: Vocabulary, val_fraction: float = 0.1, mode: str = "interleaved"
) -> IdSplit:
    """`text` encoded and split as `fit` splits a corpus, for a `Trainer` built by hand."""
    return IdSplit.of_ids(vocab.encode_compact(text).numpy(), val_fraction, mode)


def trained_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, corpus: str, **overrides: Any
) -> Path:
    """`fit` of `corpora/<corpus>` (plots off, `overrides` passed on) into a checkpoint
    `name`, alone in its parent directory: trained once per test run (`built_once`)."""

    def train(parent: Path) -> None:
        fit(CORPORA / corpus, parent / name, plots=False, **overrides)

    return built_once(tmp_path_factory, f"{name}-run", train) / name


@pytest.fixture(scope="session")
def alphabet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The alphabet trained with the defaults of `charlm train corpora/alphabet.txt`."""
    directory = trained_once(tmp_path_factory, "alphabet", "alphabet.txt")
    assert checkpoint.exists(directory)
    return directory


@pytest.fixture(scope="session")
def gru_alphabet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The alphabet trained with the defaults and `--cell gru`."""
    return trained_once(tmp_path_factory, "gru", "alphabet.txt", model_overrides={"cell": "gru"})


@pytest.fixture(scope="session")
def alphabet(alphabet_dir: Path) -> Predictor:
    return Predictor.from_checkpoint(alphabet_dir)


@pytest.fixture(scope="session")
def notes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prose model: 2 layers, so the model and inference code see real depth."""
    return trained_once(
        tmp_path_factory,
        "notes",
        "notes.txt",
        model_overrides={"num_layers": 2, "hidden_size": 32},
        train_overrides={"max_steps": 150},
    )


@pytest.fixture(scope="session")
def overfit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """notes.txt trained with the tiny preset for 1,000 steps, `--patience 0` (never stop
    early): the overfitting detector fires (the validation loss is lowest at step 300)."""
    overrides = {"max_steps": 1000, "patience": 0}
    return trained_once(tmp_path_factory, "overfit", "notes.txt", train_overrides=overrides)


@pytest.fixture(scope="session")
def notes(notes_dir: Path) -> Predictor:
    return Predictor.from_checkpoint(notes_dir)


def copy_checkpoint(src: Path, dest: Path) -> Path:
    """A copy of a checkpoint directory (what a user would rsync into a server's dir)."""
    shutil.copytree(src, dest)
    return dest


@pytest.fixture(scope="session")
def served_dir(
    tmp_path_factory: pytest.TempPathFactory, alphabet_dir: Path, notes_dir: Path
) -> Path:
    """A checkpoints directory holding the alphabet and notes models."""
    root = tmp_path_factory.mktemp("served")
    copy_checkpoint(alphabet_dir, root / "alphabet")
    copy_checkpoint(notes_dir, root / "notes")
    return root


@pytest.fixture(scope="session")
def served(served_dir: Path) -> Iterator[TestClient]:
    """The service's ASGI app over `served_dir` with default settings, started once."""
    from charlm_service.app import create_app
    from charlm_service.settings import ServiceSettings

    app = create_app(ServiceSettings(checkpoints_dir=served_dir))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium (`browsing.launch`), one per module: Playwright's synchronous
    API keeps an event loop running in the thread while it is open, where the tests of
    code that starts its own (`asyncio.run`) would fail."""
    yield from browsing.launch()


@pytest.fixture(scope="session")
def inspector_server(
    tmp_path_factory: pytest.TempPathFactory,
    alphabet_dir: Path,
    notes_dir: Path,
    overfit_dir: Path,
    gru_alphabet_dir: Path,
) -> Iterator[Server]:
    """A real `charlm serve` of four models, which the browser tests read the inspector
    from (they only read: nothing is added, reloaded or stopped)."""
    from .serving import Server  # which reads REPO from here

    root = tmp_path_factory.mktemp("browser") / "checkpoints"
    copy_checkpoint(alphabet_dir, root / "alphabet")
    copy_checkpoint(gru_alphabet_dir, root / "gru")
    copy_checkpoint(notes_dir, root / "notes")
    copy_checkpoint(overfit_dir, root / "overfit")
    s = Server(root)
    yield s
    s.stop()
