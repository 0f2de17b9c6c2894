import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from charlm import checkpoint
from charlm.errors import CheckpointNotFoundError, IncompatibleCheckpointError
from charlm.inference import Predictor
from charlm.model import CharRNN, ModelConfig
from charlm.train_config import TrainConfig
from charlm.training import fit
from charlm.vocab import Vocabulary

from .conftest import CORPORA, REPO


def _save_random(directory: Path, seed: int = 0) -> CharRNN:
    torch.manual_seed(seed)
    vocab = Vocabulary.from_text("abcdef")
    cfg = ModelConfig(vocab_size=6, embedding_dim=4, hidden_size=8, num_layers=2)
    model = CharRNN(cfg)
    checkpoint.save(
        directory,
        model_config=cfg,
        train_config=TrainConfig(),
        vocab=vocab,
        summary={"step": seed},
        weights=model.state_dict(),
    )
    return model


def test_round_trip_gives_identical_logits(tmp_path: Path) -> None:
    model = _save_random(tmp_path / "c").eval()
    ids = torch.randint(0, 6, (2, 9))
    loaded = checkpoint.load(tmp_path / "c").build_model()
    with torch.no_grad():
        assert torch.equal(model(ids)[0], loaded(ids)[0])


@pytest.mark.slow
def test_files_are_json_and_safetensors_only(alphabet_dir: Path) -> None:
    names = sorted(p.name for p in alphabet_dir.iterdir())
    assert "checkpoint.json" in names and "metrics.jsonl" in names
    for p in alphabet_dir.iterdir():
        data = p.read_bytes()
        if p.suffix == ".safetensors":
            header_len = int.from_bytes(data[:8], "little")
            json.loads(data[8 : 8 + header_len])  # a JSON header, then raw tensor bytes
        elif p.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")  # learning curves
        elif p.name == ".lock":
            assert data == b""  # the writers' lock, released (it names its holder while held)
        else:
            assert p.suffix in (".json", ".jsonl")
        assert not data.startswith(b"\x80") and b"PK\x03\x04" not in data[:4]  # no pickle/zip
    manifest = json.loads((alphabet_dir / "checkpoint.json").read_text())
    assert manifest["vocab"] == list("abcdefghijklmnopqrstuvwxyz")
    assert {"model_config", "train_config", "summary", "weights", "resume"} <= manifest.keys()


def _corrupt(directory: Path, edit: object) -> None:
    path = directory / "checkpoint.json"
    manifest = json.loads(path.read_text())
    edit(manifest)  # type: ignore[operator]
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.update(format_version=99), "format_version is 99"),
        (lambda m: m.pop("vocab"), "missing keys vocab"),
        (lambda m: m.update(vocab=list("abcde")), "vocabulary has 5 characters"),
        (lambda m: m["model_config"].update(hidden_size=9), "shape"),
        (lambda m: m["model_config"].update(num_layers=1), "unexpected: lstm.bias_hh_l1"),
        (lambda m: m["model_config"].update(colour="red"), "unknown keys: colour"),
        (lambda m: m.update(weights="../../etc/passwd"), "must name a .safetensors file"),
        (lambda m: m.update(weights="gone.safetensors"), "tensor file is missing"),
    ],
)
def test_bad_checkpoints_name_the_file_and_the_problem(
    tmp_path: Path, edit: object, message: str
) -> None:
    _save_random(tmp_path / "c")
    _corrupt(tmp_path / "c", edit)
    with pytest.raises(IncompatibleCheckpointError) as err:
        checkpoint.load(tmp_path / "c")
    assert message in str(err.value) and str(tmp_path / "c") in str(err.value)


def test_truncated_weights_and_garbage_manifest(tmp_path: Path) -> None:
    _save_random(tmp_path / "c")
    weights = next((tmp_path / "c").glob("weights-*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(IncompatibleCheckpointError, match=r"weights-\S+\.safetensors: declares"):
        checkpoint.load(tmp_path / "c")
    (tmp_path / "c" / "checkpoint.json").write_text("{not json")
    with pytest.raises(IncompatibleCheckpointError, match="not a readable JSON manifest"):
        checkpoint.load(tmp_path / "c")


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    model = _save_random(tmp_path / "c")
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    ckpt = checkpoint.load(tmp_path / "c")
    checkpoint.save(
        tmp_path / "c",
        model_config=ckpt.model_config,
        train_config=TrainConfig(),
        vocab=ckpt.vocab,
        summary={"step": 1},
        weights=model.state_dict(),
    )
    with pytest.raises(IncompatibleCheckpointError, match="NaN"):
        checkpoint.load(tmp_path / "c").build_model()
    with pytest.raises(IncompatibleCheckpointError, match="NaN"):
        Predictor.from_checkpoint(tmp_path / "c")


def test_missing_checkpoint_and_resolve(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match=r"checkpoint\.json is missing"):
        checkpoint.load(tmp_path)
    _save_random(tmp_path / "ckpts" / "mine")
    assert checkpoint.resolve("mine", tmp_path / "ckpts") == tmp_path / "ckpts" / "mine"
    assert checkpoint.resolve(tmp_path / "ckpts" / "mine") == tmp_path / "ckpts" / "mine"
    with pytest.raises(CheckpointNotFoundError, match="train one with"):
        checkpoint.resolve("other", tmp_path / "ckpts")


def test_a_new_save_replaces_files_and_cleans_up(tmp_path: Path) -> None:
    _save_random(tmp_path / "c", seed=1)
    first = set(os.listdir(tmp_path / "c"))
    (tmp_path / "c" / ".weights-x.safetensors.tmp").write_bytes(b"left by a crash")
    _save_random(tmp_path / "c", seed=2)
    second = set(os.listdir(tmp_path / "c"))
    assert len(second) == 2 and not (first & second) - {"checkpoint.json"}
    assert checkpoint.load(tmp_path / "c").summary["step"] == 2


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path: Path) -> None:
    _save_random(tmp_path / "c", seed=1)
    before = (tmp_path / "c" / "checkpoint.json").read_text()
    cfg = ModelConfig(vocab_size=6, embedding_dim=4, hidden_size=8, num_layers=2)
    with pytest.raises(Exception):  # noqa: B017 - safetensors refuses a non-tensor
        checkpoint.save(
            tmp_path / "c",
            model_config=cfg,
            train_config=TrainConfig(),
            vocab=Vocabulary.from_text("abcdef"),
            summary={"step": 5},
            weights={"x": "not a tensor"},  # type: ignore[dict-item]
        )
    assert (tmp_path / "c" / "checkpoint.json").read_text() == before
    assert checkpoint.load(tmp_path / "c").summary["step"] == 1


@pytest.mark.slow
def test_killed_training_always_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    """SIGKILL a real training process at random moments; every time, the checkpoint
    on disk loads, predicts, and resumes."""
    rng = random.Random(0)
    directory = tmp_path / "notes"
    base = [sys.executable, "-m", "charlm", "train", str(CORPORA / "notes.txt")]
    base += ["--checkpoints-dir", str(tmp_path), "--quiet", "--eval-interval", "1"]
    base += ["--max-steps", "100000", "--hidden-size", "128", "--num-layers", "2"]
    steps_seen = []
    for attempt in range(4):
        cmd = base + (["--resume"] if attempt else [])
        proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        start_step = checkpoint.load(directory).summary["step"] if attempt else 0
        while time.monotonic() < deadline:
            if checkpoint.exists(directory):
                step = json.loads((directory / "checkpoint.json").read_text())["summary"]["step"]
                if step > start_step:
                    break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = checkpoint.load(directory)
        steps_seen.append(ckpt.summary["step"])
        assert ckpt.load_resume().rng.numel() > 0
        assert Predictor.from_checkpoint(directory).predict("the ").next[0].prob > 0
    assert steps_seen == sorted(steps_seen) and steps_seen[-1] > steps_seen[0]


V1_FIXTURE = Path(__file__).parent / "fixtures" / "v1-alphabet"
"""A checkpoint written by charlm before its modules were restructured (format version 1,
400 steps on corpora/alphabet.txt, 1 x 16 units): it must keep loading and resuming."""


def test_a_checkpoint_from_before_the_restructuring_loads_and_resumes(tmp_path: Path) -> None:
    predictor = Predictor.from_checkpoint(V1_FIXTURE)
    letters = "abcdefghijklmnopqrstuvwxyz"
    assert predictor.score(letters * 2).min_prob > 0.99
    assert predictor.predict("abc", continuation_length=30).continuation == (letters * 2)[3:33]
    assert predictor.card.training.step == 400 and predictor.card.parameters == 2314
    copy = tmp_path / "v1"
    shutil.copytree(V1_FIXTURE, copy)
    resumed = fit(
        CORPORA / "alphabet.txt", copy, train_overrides={"max_steps": 450}, resume=True, plots=False
    )
    assert resumed.steps == 450 and resumed.best_val_loss < 1e-3
    assert checkpoint.load(copy).summary["step"] == 450
