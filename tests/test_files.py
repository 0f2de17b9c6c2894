"""Files a user names (`charlm.files`): a FIFO, a device, a directory, a file over its
kind's size limit or nested too deep is refused in one line naming it, exit 2, through
every command that reads one. Each command runs bounded in time and memory, so that a
read that blocks or never ends fails its test instead of hanging the suite or filling
the machine's memory."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from charlm.cli import main
from charlm.errors import ConfigError
from charlm.files import FileKind, format_size, loads_json, loads_toml, read_regular

from .conftest import CORPORA

NOTES = CORPORA / "notes.txt"
DEADLINE_S = 15
MEMORY_MARGIN = 2 * 2**30


class Hung(BaseException):
    """A command still running at its deadline (a BaseException: no handler of the code
    under test can take it for an error of its own)."""


@contextlib.contextmanager
def deadline(seconds: float = DEADLINE_S, memory: int = MEMORY_MARGIN) -> Iterator[None]:
    """Interrupt the block after `seconds` (SIGALRM also ends a blocking open of a FIFO),
    and let it map at most `memory` more bytes: a read of /dev/zero loops in C, where no
    signal stops it, and so fails with MemoryError instead of filling the machine."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"still running after {seconds} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = mapped + memory if hard == resource.RLIM_INFINITY else min(hard, mapped + memory)
    previous = signal.signal(signal.SIGALRM, expire)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> str:
    """Run `charlm argv` and check it exits 2 with one line holding each of `expected`."""
    with deadline():
        rc = main(argv)
    out, err = capsys.readouterr()
    assert (rc, out) == (2, ""), err
    assert err.startswith("charlm: error: ") and err.count("\n") == 1, err
    for part in expected:
        assert part in err, err
    return err


# -- bad files, made for real -------------------------------------------------------


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no room on disk (what `truncate -s` makes)."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


MAKERS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "fifo": (fifo, "is a FIFO (named pipe), not a regular file"),
    "dev-zero": (lambda _: Path("/dev/zero"), "is a character device, not a regular file"),
    "directory": (lambda p: (p.mkdir(), p)[1], "is a directory"),
}


# -- the library --------------------------------------------------------------------

KIND = FileKind("test files", 1000, ConfigError)


def test_format_size() -> None:
    sizes = (2**20, 512 * 2**20, 2**30, 2048, 1536)
    assert [format_size(n) for n in sizes] == ["1 MiB", "512 MiB", "1 GiB", "2 KiB", "1,536 bytes"]


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_read_regular_refuses_what_is_not_a_regular_file(tmp_path: Path, name: str) -> None:
    make, message = MAKERS[name]
    with deadline(), pytest.raises(ConfigError, match="^x: " + re.escape(message)):
        read_regular(make(tmp_path / name), "x", KIND)


def test_read_regular_reads_up_to_the_limit_and_no_more(tmp_path: Path) -> None:
    (tmp_path / "ok").write_bytes(b"a" * 1000)
    assert read_regular(tmp_path / "ok", "x", KIND) == b"a" * 1000
    with pytest.raises(ConfigError, match=r"^x: 1,001 bytes; test files over 1,000 bytes are"):
        read_regular(sparse(tmp_path / "big", 1001), "x", KIND)


def test_nesting_is_counted_outside_strings_and_comments() -> None:
    deep = "[" * 5 + "]" * 5
    assert loads_json(json.dumps({"a": deep, "b": [[1]]}), "x", KIND, 3)["a"] == deep
    with pytest.raises(ConfigError, match="x: nested deeper than 3 levels"):
        loads_json('{"a": [[1]], "b": [[["[[["]]]}', "x", KIND, 3)
    toml = f'a = "{deep}"\nb = \'{deep}\'\nc = """\n{deep}"""\n# {deep}\nd = [[1]]\n'
    assert loads_toml(toml, "x", KIND, 3)["d"] == [[1]]
    with pytest.raises(ConfigError, match="nested deeper than 3 levels"):
        loads_toml("d = [[[1]]]\n", "x", KIND, 3)
    with pytest.raises(ConfigError, match="nested deeper than 3 levels"):
        loads_toml("a.b.c.d = 1\n", "x", KIND, 3)  # dotted keys nest without brackets
    with pytest.raises(ConfigError, match="nested deeper than 3 levels"):
        loads_json("[" * 100_000 + "]" * 100_000, "x", KIND, 3)


# -- through the command line --------------------------------------------------------


def _settings(tmp_path: Path, bad: Path) -> list[str]:
    ck = str(tmp_path / "ck")
    return ["train", str(CORPORA / "ab.txt"), "--config", str(bad), "--checkpoints-dir", ck]


def _space(tmp_path: Path, bad: Path) -> list[str]:
    out = str(tmp_path / "sweep")
    argv = ["sweep", str(NOTES), "--space", str(bad), "--out", out]
    return [*argv, "--trials", "1", "--minutes-per-trial", "0.03"]


def _log(tmp_path: Path, bad: Path) -> list[str]:
    return ["diagnose", "--log", str(bad)]


def _corpus_read_whole(tmp_path: Path, bad: Path) -> list[str]:
    log = tmp_path / "log.csv"
    log.write_text("step,loss\n1,2.0\n", encoding="utf-8")
    return ["diagnose", "--log", str(log), "--corpus", str(bad)]


def _corpus_to_train(tmp_path: Path, bad: Path) -> list[str]:
    return ["train", str(bad), "--checkpoints-dir", str(tmp_path / "ck")]


def _corpus_to_prepare(tmp_path: Path, bad: Path) -> list[str]:
    return ["corpus", "prepare", str(bad), "--out", str(tmp_path / "p")]


READERS: dict[str, tuple[Callable[[Path, Path], list[str]], str, int | None]] = {
    "settings": (_settings, "settings files over 1 MiB are refused", 2**20),
    "space": (_space, "space files over 1 MiB are refused", 2**20),
    "log": (_log, "logs over 512 MiB are refused", 512 * 2**20),
    "corpus-read-whole": (_corpus_read_whole, "corpora read whole over 1 GiB", 2**30),
    "corpus-to-train": (_corpus_to_train, "", None),
    "corpus-to-prepare": (_corpus_to_prepare, "", None),
}


@pytest.mark.parametrize("bad", sorted(MAKERS))
@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_refuses_what_is_not_a_regular_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reader: str, bad: str
) -> None:
    argv, _, _ = READERS[reader]
    make, message = MAKERS[bad]
    path = make(tmp_path / "bad.txt")
    refused(capsys, argv(tmp_path, path), f"{path}: ", message)
    assert not (tmp_path / "ck").exists() and not (tmp_path / "p").exists()


@pytest.mark.parametrize("reader", sorted(r for r in READERS if READERS[r][2] is not None))
def test_every_reader_refuses_a_file_over_its_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reader: str
) -> None:
    argv, message, limit = READERS[reader]
    assert limit is not None
    path = sparse(tmp_path / "big.txt", limit + 1)
    refused(capsys, argv(tmp_path, path), f"{path}: {limit + 1:,} bytes; {message}")


def test_a_settings_file_of_seven_gigabytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = sparse(tmp_path / "x.toml", 7_700_000_000)
    refused(
        capsys,
        _settings(tmp_path, path),
        f"settings file {path}: 7,700,000,000 bytes; settings files over 1 MiB are refused",
    )


@pytest.mark.parametrize(("reader", "depth"), [("settings", 4), ("space", 4)])
def test_toml_nested_5000_deep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reader: str, depth: int
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("lr = " + "[" * 5000 + "]" * 5000 + "\n", encoding="utf-8")
    argv, _, _ = READERS[reader]
    refused(capsys, argv(tmp_path, path), f"{path}: nested deeper than {depth} levels")


def test_a_log_row_nested_5000_deep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.jsonl"
    row = '{"step": 2, "loss": 1.0, "gates": ' + "[" * 5000 + "]" * 5000 + "}"
    path.write_text('{"step": 1, "loss": 2.0}\n' + row + "\n", encoding="utf-8")
    refused(capsys, _log(tmp_path, path), f"{path}, line 2: nested deeper than 8 levels")


def test_a_one_line_log_of_200_mb_is_refused_at_its_first_mebibyte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "one.jsonl"
    path.write_bytes(b'{"step": 1, "loss": "')
    sparse(path, 200_000_000)  # the rest of the line: zeros, taking no room
    refused(
        capsys, _log(tmp_path, path), f"{path}, line 1: longer than 1 MiB; log lines over 1 MiB"
    )


def test_a_log_csv_cell_over_the_csv_modules_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wide.csv"
    path.write_text("step,loss\n1,2.0\n2," + "9" * 200_000 + "\n", encoding="utf-8")
    refused(capsys, _log(tmp_path, path), f"{path}, line 3: not readable as CSV (field larger")


# -- prepared corpora ------------------------------------------------------------------


@pytest.fixture
def prepared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "notes.prepared"
    assert main(["corpus", "prepare", str(NOTES), "--out", str(out)]) == 0
    capsys.readouterr()
    return out


@pytest.mark.parametrize("name", ["ids.npy", "corpus.json"])
def test_a_prepared_corpus_with_a_fifo_for_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prepared: Path, name: str
) -> None:
    (prepared / name).unlink()
    fifo(prepared / name)
    refused(
        capsys,
        _corpus_to_train(tmp_path, prepared),
        f"prepared corpus {prepared}: {name}: is a FIFO (named pipe), not a regular file",
    )


def test_a_prepared_corpus_description_nested_100000_deep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prepared: Path
) -> None:
    meta = prepared / "corpus.json"
    text = meta.read_text(encoding="utf-8")
    meta.write_text(text[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    refused(
        capsys,
        _corpus_to_train(tmp_path, prepared),
        f"prepared corpus {prepared}: corpus.json: nested deeper than 4 levels",
    )


def test_a_prepared_corpus_description_over_its_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prepared: Path
) -> None:
    sparse(prepared / "corpus.json", 64 * 2**20 + 1)
    refused(
        capsys,
        _corpus_to_train(tmp_path, prepared),
        "corpus.json: 67,108,865 bytes; prepared corpus descriptions over 64 MiB are refused",
    )


def test_prepared_ids_shorter_than_their_description(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prepared: Path
) -> None:
    with open(prepared / "ids.npy", "r+b") as f:
        f.truncate(1000)  # mapped as it was, the missing ids would fault when read
    refused(capsys, _corpus_to_train(tmp_path, prepared), "ids.npy is 1,000 bytes, not a")


# -- checkpoints ---------------------------------------------------------------------


def test_a_checkpoint_whose_weights_are_a_fifo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alphabet_dir: Path
) -> None:
    directory = shutil.copytree(alphabet_dir, tmp_path / "alphabet")
    weights = json.loads((directory / "checkpoint.json").read_text(encoding="utf-8"))["weights"]
    (directory / weights).unlink()
    fifo(directory / weights)
    refused(capsys, ["predict", str(directory), "abc"], f"{weights}: is a FIFO (named pipe)")
