"""Shared fixtures: paths, a trained alphabet checkpoint, small trained checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from charlm import checkpoint
from charlm.cli import main
from charlm.inference import Predictor

REPO = Path(__file__).resolve().parents[1]
CORPORA = REPO / "corpora"
SHAKESPEARE = REPO.parent / "shared" / "corpora" / "tinyshakespeare.txt"


@pytest.fixture(scope="session")
def alphabet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The alphabet trained by the default command (only the output place changed)."""
    out = tmp_path_factory.mktemp("alphabet-run")
    rc = main(["train", str(CORPORA / "alphabet.txt"), "--out-dir", str(out), "--quiet"])
    assert rc == 0
    directory = out / "alphabet"
    assert checkpoint.exists(directory)
    return directory


@pytest.fixture(scope="session")
def alphabet(alphabet_dir: Path) -> Predictor:
    return Predictor.from_checkpoint(alphabet_dir)


@pytest.fixture(scope="session")
def notes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small prose model: 2 layers, so the model and inference code see real depth."""
    out = tmp_path_factory.mktemp("notes-run")
    rc = main(
        [
            "train",
            str(CORPORA / "notes.txt"),
            "--out-dir",
            str(out),
            "--quiet",
            "--num-layers",
            "2",
            "--hidden-size",
            "32",
            "--max-steps",
            "150",
        ]
    )
    assert rc == 0
    return out / "notes"


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
