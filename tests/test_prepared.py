"""Prepared corpora: ids on disk, memory-mapped, the same training as from the text."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charlm import checkpoint
from charlm.cli import main
from charlm.data import IdSplit, Streams, split_ranges
from charlm.errors import CorpusError, UnknownCharacterError
from charlm.prepared import IDS_FILE, META_FILE, load_corpus, open_prepared, prepare
from charlm.runlog import EvalRow, TrainRow, read_metrics
from charlm.training import fit
from charlm.vocab import Vocabulary
from tests.conftest import CORPORA, SHAKESPEARE


def test_prepare_writes_the_ids_of_the_text(tmp_path: Path) -> None:
    text = "Åsa 🙂 naïve\r\nline two\n" * 50
    src = tmp_path / "c.txt"
    src.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))  # the BOM is not text
    corpus = prepare(src, tmp_path / "c.prepared")
    assert isinstance(corpus.ids, np.memmap)
    assert corpus.vocab == Vocabulary.from_text(text)
    assert corpus.ids.dtype == np.uint8 and corpus.chars == len(text)
    assert corpus.vocab.decode(corpus.ids.tolist()) == text
    in_memory = load_corpus(_write(tmp_path, text))
    assert in_memory.sha256 == corpus.sha256  # the sha256 of the text, BOM or not
    assert np.array_equal(in_memory.ids, corpus.ids)


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "plain.txt"
    p.write_text(text, encoding="utf-8")
    return p


def test_prepare_uses_uint16_beyond_256_symbols(tmp_path: Path) -> None:
    text = "".join(chr(0x4E00 + i) for i in range(300)) * 3
    corpus = prepare(_write(tmp_path, text), tmp_path / "p")
    assert corpus.ids.dtype == np.uint16 and len(corpus.vocab) == 300
    assert corpus.vocab.decode(corpus.ids.tolist()) == text


def test_prepare_reads_in_chunks_across_split_characters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import charlm.prepared as prepared

    monkeypatch.setattr(prepared, "_CHUNK_BYTES", 7)  # cuts multi-byte characters apart
    text = "añb🙂c€d" * 40
    corpus = prepare(_write(tmp_path, text), tmp_path / "p")
    assert corpus.vocab.decode(corpus.ids.tolist()) == text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "file is empty"),
        (b"abc\x00def", "NUL"),
        (b"abc\xffdef", "not valid UTF-8 (at byte offset 3)"),
    ],
)
def test_prepare_rejects_bad_corpora(tmp_path: Path, data: bytes, message: str) -> None:
    src = tmp_path / "bad.txt"
    src.write_bytes(data)
    with pytest.raises(CorpusError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prepare(src, tmp_path / "out")
    assert not (tmp_path / "out" / META_FILE).exists()


def test_a_damaged_preparation_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "p"
    prepare(CORPORA / "notes.txt", out)
    meta = json.loads((out / META_FILE).read_text())
    ids = np.load(out / IDS_FILE)
    ids[5] = len(meta["vocab"])  # an id beyond the vocabulary
    np.save(out / IDS_FILE, ids)
    with pytest.raises(CorpusError, match="beyond the vocabulary"):
        open_prepared(out)
    np.save(out / IDS_FILE, ids[:-1])
    with pytest.raises(CorpusError, match="expected"):
        open_prepared(out)
    (out / META_FILE).write_text("{not json")
    with pytest.raises(CorpusError, match="cannot read"):
        open_prepared(out)
    assert main(["train", str(out), "--checkpoints-dir", str(tmp_path / "ck")]) == 2


def test_id_split_cuts_where_the_text_split_cuts() -> None:
    if not SHAKESPEARE.exists():
        pytest.skip("tiny Shakespeare is not beside the project")
    text = SHAKESPEARE.read_text(encoding="utf-8")[:300_001]
    vocab = Vocabulary.from_text(text)
    for mode in ("interleaved", "tail"):
        r = split_ranges(len(text), 0.1, mode)
        train = "".join(text[a:b] for a, b in r.train)
        by_ids = IdSplit.of_ids(vocab.encode_compact(text).numpy(), 0.1, mode)
        assert vocab.decode(np.concatenate(by_ids.train).tolist()) == train
        assert [vocab.decode(b.tolist()) for b in by_ids.val_blocks] == [
            text[a:b] for a, b in r.val
        ]
        # windows read across the training pieces equal those of the joined text
        joined = Streams(vocab.encode_compact(train), 64, 100)
        pieces = Streams(by_ids.train, 64, 100)
        assert len(by_ids.train) > 1 or mode == "tail"
        for start in joined.window_starts(7):
            assert all(
                np.array_equal(a, b)
                for a, b in zip(joined.window(start), pieces.window(start), strict=True)
            )


def test_streams_share_out_rows_among_ranks() -> None:
    ids = np.arange(1001)
    whole = Streams(ids, 8, 10)
    parts = [Streams(ids, 8, 10, rank=r, world=2) for r in range(2)]
    start = whole.window_starts(3)[4]
    x, y = whole.window(start)
    assert np.array_equal(np.concatenate([p.window(start)[0] for p in parts]), x)
    assert np.array_equal(np.concatenate([p.window(start)[1] for p in parts]), y)
    with pytest.raises(Exception, match="multiple of 3"):
        Streams(ids, 8, 10, rank=0, world=3)


def test_training_from_a_preparation_equals_training_from_the_text(tmp_path: Path) -> None:
    overrides = {"max_steps": 40, "eval_interval": 20}
    model = {"hidden_size": 16}
    fit(CORPORA / "notes.txt", tmp_path / "text", train_overrides=overrides,
        model_overrides=model, plots=False)  # fmt: skip
    prepare(CORPORA / "notes.txt", tmp_path / "notes.prepared")
    fit(tmp_path / "notes.prepared", tmp_path / "ids", train_overrides=overrides,
        model_overrides=model, plots=False)  # fmt: skip
    a, b = (read_metrics(tmp_path / d / "metrics.jsonl") for d in ("text", "ids"))
    losses = [
        [
            r.loss if isinstance(r, TrainRow) else r.val_loss
            for r in rows
            if isinstance(r, TrainRow | EvalRow)
        ]
        for rows in (a, b)
    ]
    assert losses[0] == losses[1] and len(losses[0]) >= 3
    summary = checkpoint.load(tmp_path / "ids").summary
    assert summary["corpus_sha256"] == checkpoint.load(tmp_path / "text").summary["corpus_sha256"]
    assert summary["corpus_prepared"] == str(tmp_path / "notes.prepared")


def test_resume_refuses_a_corpus_with_new_characters(tmp_path: Path) -> None:
    fit(CORPORA / "alphabet.txt", tmp_path / "a", train_overrides={"max_steps": 10},
        plots=False)  # fmt: skip
    other = _write(tmp_path, "abc!" * 100)
    with pytest.raises(UnknownCharacterError, match=r"'!' at positions 3, 7, 11$"):
        fit(other, tmp_path / "a", resume=True, plots=False)


@pytest.mark.slow
def test_cli_prepare_then_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "notes.txt"
    src.write_text((CORPORA / "notes.txt").read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["corpus", "prepare", str(src)]) == 0
    out = capsys.readouterr().out
    assert "prepared 6,469 characters (67 symbols, uint8)" in out
    assert (tmp_path / "notes.prepared" / IDS_FILE).is_file()
    ck = tmp_path / "ck"
    argv = ["train", str(tmp_path / "notes.prepared"), "--checkpoints-dir", str(ck)]
    assert main([*argv, "--max-steps", "20", "--quiet"]) == 0
    assert checkpoint.exists(ck / "notes")
    assert main([*argv, "--max-steps", "30", "--quiet", "--resume"]) == 0
    assert checkpoint.load(ck / "notes").summary["step"] == 30
    assert main(["corpus", "prepare", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_large_text_is_prepared_on_the_fly_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import charlm.prepared as prepared

    monkeypatch.setattr(prepared, "PREPARE_ABOVE_BYTES", 1000)
    monkeypatch.setenv("CHARLM_CACHE", str(tmp_path / "cache"))
    src = _write(tmp_path, (CORPORA / "notes.txt").read_text(encoding="utf-8"))
    first = load_corpus(src)
    assert first.prepared is not None and first.prepared.is_relative_to(tmp_path / "cache")
    assert load_corpus(src).prepared == first.prepared  # reused
    src.write_text("changed text " * 100, encoding="utf-8")
    again = load_corpus(src)
    assert again.prepared != first.prepared and again.chars == 1300


# -- a full disk --------------------------------------------------------------------
# A file size limit (RLIMIT_FSIZE) stands in for a full disk: a write past it fails with
# EFBIG as a write onto a full disk fails with ENOSPC, it needs no privileges or mounts,
# and it holds in a child process only. SIGXFSZ is ignored there, so that the write
# returns the error instead of the signal ending the process.

FILE_SIZE_LIMIT = 500_000


def _with_file_size_limit(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))

    return subprocess.run(
        [sys.executable, *argv],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def _two_megabytes(tmp_path: Path) -> Path:
    src = tmp_path / "big.txt"
    src.write_text("the quick brown fox jumps\n" * 80_000, encoding="utf-8")
    return src


@pytest.mark.slow
def test_prepare_onto_a_full_disk_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out" / "big.prepared"
    argv = ["-m", "charlm", "corpus", "prepare", str(_two_megabytes(tmp_path)), "--out", str(out)]
    done = _with_file_size_limit(argv)
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"charlm: error: {out / IDS_FILE}: cannot write it (File too large)\n"
    assert not out.exists() and not list(tmp_path.rglob(".prepare-*"))


@pytest.mark.slow
def test_training_prepares_onto_a_full_disk_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    code = (
        "import sys, charlm.prepared as p; p.PREPARE_ABOVE_BYTES = 100_000; "
        "from charlm.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    cache, ck = tmp_path / "cache", tmp_path / "ck"
    argv = ["-c", code, "train", str(_two_megabytes(tmp_path)), "--checkpoints-dir", str(ck)]
    done = _with_file_size_limit(argv, CHARLM_CACHE=str(cache))
    assert done.returncode == 2, done.stderr
    *_, last = done.stderr.splitlines()
    where = re.escape(str(cache / "prepared"))
    assert re.fullmatch(
        rf"charlm: error: {where}/\w+/ids.npy: cannot write it \(File too large\)", last
    )
    assert "Traceback" not in done.stderr
    assert not list(cache.rglob(".prepare-*")) and not list(cache.rglob(IDS_FILE))
    assert not ck.exists()
