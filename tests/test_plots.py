"""Learning-curve PNGs: written by training, valid images, redrawn as training goes on."""

import struct
import zlib
from pathlib import Path

import pytest

from charlm.cli import main
from charlm.training import fit

from .conftest import CORPORA


def png_info(path: Path) -> tuple[int, int, dict[str, str]]:
    """Width, height and text chunks of a PNG, checking every chunk's CRC."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, texts, size = 8, {}, (0, 0)
    chunks = []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append(kind)
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"tEXt":
            key, value = body.split(b"\0", 1)
            texts[key.decode()] = value.decode("latin-1")
        pos += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    return size[0], size[1], texts


@pytest.mark.slow
def test_training_writes_and_redraws_the_curves(tmp_path: Path) -> None:
    directory = tmp_path / "notes"
    overrides = {"max_steps": 40, "eval_interval": 10, "hidden_size": 16}
    model = {"hidden_size": overrides.pop("hidden_size")}
    fit(CORPORA / "notes.txt", directory, model_overrides=model, train_overrides=overrides)
    png = directory / "learning_curves.png"
    width, height, texts = png_info(png)
    assert (width, height) == (1000, 700) and texts["Description"] == "charlm steps=40"
    before = png.read_bytes()
    fit(CORPORA / "notes.txt", directory, train_overrides={"max_steps": 80}, resume=True)
    assert png_info(png)[2]["Description"] == "charlm steps=80"
    assert png.read_bytes() != before


def test_plot_command(
    alphabet_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "curves.png"
    assert main(["plot", str(alphabet_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert png_info(out)[2]["Description"] == "charlm steps=1000"
    empty = tmp_path / "ckpt"
    empty.mkdir()
    (empty / "checkpoint.json").write_text("{}")
    assert main(["plot", str(empty)]) == 2
    assert "no metrics.jsonl to plot" in capsys.readouterr().err
