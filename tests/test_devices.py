"""Devices: CUDA where present, the CPU everywhere; a checkpoint from any device loads on
a CPU-only machine. The CUDA tests skip cleanly without a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from charlm import checkpoint
from charlm.cli import main
from charlm.errors import ConfigError
from charlm.inference import Predictor
from charlm.runtime import pick_device, train_in_bf16
from charlm.training import fit
from charlm_service.settings import settings_from
from tests.conftest import CORPORA

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
TEXT = "abcdefghijklm"


def _on_cpu_only(directory: Path) -> list[float]:
    """The next-character probabilities after TEXT, from a process that sees no GPU."""
    code = (
        "import json, sys, torch; from charlm.inference import Predictor; "
        "assert not torch.cuda.is_available(); "
        "p = Predictor.from_checkpoint(sys.argv[1]); "
        f"print(json.dumps([c.prob for c in p.predict({TEXT!r}, top_k=0).next]))"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-c", code, str(directory)], env=env, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return list(json.loads(out.stdout))


@pytest.mark.slow
def test_a_cpu_checkpoint_loads_in_a_process_without_a_gpu(alphabet_dir: Path) -> None:
    here = [c.prob for c in Predictor.from_checkpoint(alphabet_dir).predict(TEXT, top_k=0).next]
    assert _on_cpu_only(alphabet_dir) == pytest.approx(here, abs=1e-6)


def test_asking_for_cuda_without_one_is_a_clear_error(
    alphabet_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        pick_device("cuda")
    argv = ["train", str(CORPORA / "alphabet.txt"), "--checkpoints-dir", str(tmp_path)]
    assert main([*argv, "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not checkpoint.exists(tmp_path / "alphabet")
    assert main(["predict", str(alphabet_dir), "abc", "--device", "cuda:1"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="device"):
        settings_from({"device": "tpu"})
    assert settings_from({"device": "auto"}).device == "auto"


def test_auto_precision_is_bf16_on_a_cuda_gpu_that_has_it() -> None:
    cpu = torch.device("cpu")
    assert not train_in_bf16("auto", cpu, 64)  # small models stay float32 on a CPU
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        assert train_in_bf16("auto", gpu, 64) == torch.cuda.is_bf16_supported()


@cuda
def test_a_cuda_checkpoint_loads_on_a_cpu_only_machine(tmp_path: Path) -> None:
    directory = tmp_path / "gpu"
    fit(CORPORA / "alphabet.txt", directory, device="cuda", plots=False)
    summary = checkpoint.load(directory).summary
    on_gpu = Predictor.from_checkpoint(directory, "cuda").predict(TEXT, top_k=0)
    assert summary["bf16"] == torch.cuda.is_bf16_supported()
    on_cpu = _on_cpu_only(directory)
    assert on_cpu == pytest.approx([c.prob for c in on_gpu.next], abs=1e-4)
    # and it resumes on the CPU
    fit(CORPORA / "alphabet.txt", directory, device="cpu", resume=True, plots=False,
        train_overrides={"max_steps": summary["step"] + 20})  # fmt: skip
    assert checkpoint.load(directory).summary["step"] == summary["step"] + 20


@cuda
def test_the_service_runs_on_cuda(alphabet_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from charlm_service.app import create_app

    settings = settings_from({"checkpoints_dir": alphabet_dir.parent, "device": "cuda"})
    with TestClient(create_app(settings)) as client:
        r = client.post("/predict", json={"text": "abc", "model": alphabet_dir.name})
        assert r.status_code == 200, r.text
        assert r.json()["next"][0]["char"] == "d"
