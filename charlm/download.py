"""Fetching well-known public corpora into a local cache, checked by sha256.

A download streams into a temporary file beside its destination, hashing as it goes;
only a file whose sha256 matches is renamed into the cache. A cached file is checked
again before it is reused, and nothing is fetched when it matches. Any failure (no
network, an HTTP error, a size or checksum mismatch) raises `CorpusDownloadError`
saying what happened and how to place the file by hand. `resolve_corpus` turns a known
corpus's name into its cached file, so that `charlm train tinyshakespeare` and
`fit("tinyshakespeare", ...)` read the same file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from charlm.errors import CorpusDownloadError, InputError

__all__ = [
    "KNOWN_CORPORA",
    "CorpusSource",
    "cache_dir",
    "cached_path",
    "download",
    "resolve_corpus",
]

_CHUNK = 1 << 16


@dataclass(frozen=True)
class CorpusSource:
    name: str
    url: str
    sha256: str
    size: int
    description: str


KNOWN_CORPORA: dict[str, CorpusSource] = {
    "tinyshakespeare": CorpusSource(
        name="tinyshakespeare",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size=1_115_394,
        description="about 40,000 lines of Shakespeare's plays (1,115,394 characters, 65 symbols)",
    ),
}


def cache_dir() -> Path:
    """$CHARLM_CACHE, else $XDG_CACHE_HOME/charlm, else ~/.cache/charlm."""
    if os.environ.get("CHARLM_CACHE"):
        return Path(os.environ["CHARLM_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "charlm"


def cached_path(name: str, directory: Path | None = None) -> Path:
    return (directory or cache_dir()) / "corpora" / f"{name}.txt"


def resolve_corpus(corpus: str | Path) -> Path:
    """The corpus that `corpus` names: a path as it is, unless it does not exist and is
    the name of a known corpus given as a string (`KNOWN_CORPORA`), whose cached file it
    then is; `InputError` when that file is not downloaded yet."""
    path = Path(corpus)
    if isinstance(corpus, str) and corpus in KNOWN_CORPORA and not path.exists():
        cached = cached_path(corpus)
        if cached.is_file():
            return cached
        raise InputError(
            f"corpus {corpus}: not downloaded yet; run `charlm corpus download {corpus}`"
        )
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download(
    name: str,
    *,
    directory: Path | None = None,
    url: str | None = None,
    timeout: float = 30.0,
    source: CorpusSource | None = None,
) -> Path:
    """The cached path of corpus `name`, downloading it first if needed.

    `url` replaces the corpus's usual address (a mirror, or a file:// URL of a local
    copy); the checksum is checked all the same.
    """
    if source is None:
        if name not in KNOWN_CORPORA:
            known = ", ".join(sorted(KNOWN_CORPORA))
            raise CorpusDownloadError(f"unknown corpus {name!r}; known corpora: {known}")
        source = KNOWN_CORPORA[name]
    dest = cached_path(source.name, directory)
    if dest.is_file() and _sha256(dest) == source.sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    address = url or source.url
    tmp = dest.with_name(f".{dest.name}.part")
    by_hand = f"to install it by hand, save the file as {dest} (sha256 {source.sha256})"
    h = hashlib.sha256()
    size = 0
    limit = source.size * 2 + _CHUNK
    try:
        with urllib.request.urlopen(address, timeout=timeout) as response, open(tmp, "wb") as out:
            while block := response.read(_CHUNK):
                size += len(block)
                if size > limit:
                    raise CorpusDownloadError(
                        f"{address}: more than {limit} bytes, far larger than {source.name} "
                        f"({source.size} bytes); not the expected file"
                    )
                h.update(block)
                out.write(block)
    except CorpusDownloadError:
        _remove(tmp)
        raise
    except urllib.error.HTTPError as e:
        _remove(tmp)
        raise CorpusDownloadError(
            f"could not download {source.name} from {address}: the server answered HTTP "
            f"{e.code} {e.reason}; {by_hand}"
        ) from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        _remove(tmp)
        reason = getattr(e, "reason", None) or e
        raise CorpusDownloadError(
            f"could not download {source.name} from {address} ({reason}); "
            f"if this machine is offline, {by_hand}"
        ) from e
    digest = h.hexdigest()
    if digest != source.sha256:
        _remove(tmp)
        raise CorpusDownloadError(
            f"{address}: sha256 is {digest}, expected {source.sha256} ({size} bytes received, "
            f"{source.size} expected); the file was not kept"
        )
    os.replace(tmp, dest)
    return dest


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
