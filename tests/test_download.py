"""The corpus download path, against real HTTP servers on loopback."""

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from charlm.cli import main
from charlm.download import KNOWN_CORPORA, CorpusSource, download
from charlm.errors import CorpusDownloadError

from .conftest import SHAKESPEARE
from .serving import static_files


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving files from a temporary directory."""
    root = tmp_path / "www"
    root.mkdir()
    with static_files(root) as url:
        yield url, root


def small_source(data: bytes) -> CorpusSource:
    return CorpusSource(
        name="small",
        url="http://127.0.0.1:9/unused",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        description="test corpus",
    )


needs_shakespeare = pytest.mark.skipif(
    not SHAKESPEARE.is_file(), reason=f"{SHAKESPEARE} is not present"
)


@needs_shakespeare
def test_tinyshakespeare_downloads_and_verifies(
    server: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, root = server
    (root / "input.txt").write_bytes(SHAKESPEARE.read_bytes())
    cache = tmp_path / "cache"
    args = ["corpus", "download", "tinyshakespeare", "--url", f"{url}/input.txt"]
    assert main([*args, "--cache-dir", str(cache)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == cache / "corpora" / "tinyshakespeare.txt"
    data = path.read_bytes()
    assert len(data) == KNOWN_CORPORA["tinyshakespeare"].size
    assert hashlib.sha256(data).hexdigest() == KNOWN_CORPORA["tinyshakespeare"].sha256
    # Cached: a second call needs no server at all.
    (root / "input.txt").unlink()
    assert download("tinyshakespeare", directory=cache, url=f"{url}/input.txt") == path


@needs_shakespeare
def test_tampered_tinyshakespeare_is_rejected(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    data = bytearray(SHAKESPEARE.read_bytes())
    data[1000:1005] = b"HELLO"
    (root / "input.txt").write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(CorpusDownloadError, match=r"sha256 is .*expected 86c4e6aa") as err:
        download("tinyshakespeare", directory=cache, url=f"{url}/input.txt")
    assert "not kept" in str(err.value)
    assert not list((cache / "corpora").iterdir())  # neither the file nor a partial one


def test_a_corrupted_cache_is_fetched_again(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    payload = b"the quick brown fox\n" * 100
    (root / "small.txt").write_bytes(payload)
    source = small_source(payload)
    cached = download("small", directory=tmp_path, url=f"{url}/small.txt", source=source)
    cached.write_bytes(b"damaged")
    again = download("small", directory=tmp_path, url=f"{url}/small.txt", source=source)
    assert again.read_bytes() == payload


def test_offline_fails_cleanly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = small_source(b"x")
    with pytest.raises(CorpusDownloadError, match="offline") as err:
        download("small", directory=tmp_path, url=f"http://127.0.0.1:{port}/x", source=source)
    assert str(tmp_path / "corpora" / "small.txt") in str(err.value)


def test_http_errors_and_oversized_answers(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    source = small_source(b"tiny")
    with pytest.raises(CorpusDownloadError, match="404"):
        download("small", directory=tmp_path, url=f"{url}/missing.txt", source=source)
    (root / "big.txt").write_bytes(b"x" * 200_000)
    with pytest.raises(CorpusDownloadError, match="far larger"):
        download("small", directory=tmp_path, url=f"{url}/big.txt", source=source)


def test_a_corpus_name_resolves_the_same_in_the_library_and_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fit("tinyshakespeare")` reads what `charlm train tinyshakespeare` reads: the
    downloaded copy; a path is a path; a known name not downloaded yet says how to get it."""
    from charlm.download import resolve_corpus
    from charlm.errors import InputError

    monkeypatch.setenv("CHARLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="charlm corpus download tinyshakespeare"):
        resolve_corpus("tinyshakespeare")
    cached = tmp_path / "cache" / "corpora" / "tinyshakespeare.txt"
    cached.parent.mkdir(parents=True)
    cached.write_text("To be, or not to be\n" * 10, encoding="utf-8")
    assert resolve_corpus("tinyshakespeare") == cached
    import charlm

    run = charlm.fit(
        "tinyshakespeare", tmp_path / "run", train_overrides={"max_steps": 3}, plots=False
    )
    assert run.steps == 3
    assert Path(charlm.load_checkpoint(tmp_path / "run").summary["corpus"]) == cached
    assert resolve_corpus(Path("tinyshakespeare")) == Path("tinyshakespeare")  # a Path is a path
    (tmp_path / "tinyshakespeare").write_text("a file of that name wins", encoding="utf-8")
    assert resolve_corpus("tinyshakespeare") == Path("tinyshakespeare")
    assert "tinyshakespeare" in KNOWN_CORPORA
