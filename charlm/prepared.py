"""Prepared corpora: a corpus's character ids written once to disk and memory-mapped.

`prepare(source, directory)` reads a UTF-8 corpus in chunks, twice (once for its
vocabulary, length and sha256, once to write the ids), and writes into `directory`:

- `ids.npy`: one id per character, uint8 for up to 256 distinct characters, uint16 up
  to 65,536, else uint32, in NumPy's own format so that it maps without a copy;
- `corpus.json`: the vocabulary, the character count, the source's sha256 and name.

The ids are written with ordinary writes, so that a full disk is an error naming the
file (a write through a memory map onto a full disk would kill the process with
SIGBUS), and into a hidden temporary directory that is removed whatever happens; the
JSON is moved into place last, marking a finished preparation.

`open_prepared(directory)` maps the ids read-only and checks them against the JSON, so
training reads windows straight from the page cache and its memory does not grow with
the corpus. Both files must be regular files (`charlm.files`): the JSON at most
`MAX_META_BYTES`, nested at most `MAX_META_DEPTH` deep; the ids exactly the size the
JSON's character count gives.

`load_corpus(path)` is what training calls: a prepared directory is opened, a text file
larger than `PREPARE_ABOVE_BYTES` is prepared on the fly into the cache
(`download.cache_dir()/prepared/`, reused while the text is unchanged), and a smaller
one is read and encoded in memory. Either way the result is a `Corpus` of ids; this
module knows nothing of models or training.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import logging
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from charlm import download, files
from charlm.data import check_file, read_corpus
from charlm.errors import CorpusError, UnknownCharacterError
from charlm.vocab import Vocabulary

__all__ = [
    "IDS_FILE",
    "MAX_META_BYTES",
    "MAX_META_DEPTH",
    "META_FILE",
    "PREPARE_ABOVE_BYTES",
    "Corpus",
    "is_prepared",
    "load_corpus",
    "open_prepared",
    "prepare",
]

log = logging.getLogger(__name__)

IDS_FILE = "ids.npy"
META_FILE = "corpus.json"
FORMAT = "charlm-prepared-corpus"
VERSION = 1
PREPARE_ABOVE_BYTES = 64 * 1024 * 1024
"""A text corpus larger than this is prepared (on disk, mapped) rather than read whole."""
MAX_META_BYTES = 64 * 2**20
"""The largest corpus.json read: a vocabulary of every Unicode code point is about 12 MB."""
MAX_META_DEPTH = 4
"""Deepest nesting of corpus.json read (charlm writes 2: the object, its vocabulary)."""
_META = files.FileKind("prepared corpus descriptions", MAX_META_BYTES, CorpusError)
_MAPPED = files.FileKind("prepared ids", None, CorpusError)
_STREAMED = files.FileKind("corpora", None, CorpusError)
_CHUNK_BYTES = 4 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
_CODE_POINTS = 0x110000


@dataclass(frozen=True)
class Corpus:
    """A corpus as character ids: `ids` (1-D, memory-mapped for a prepared corpus),
    its vocabulary, and where it came from (`sha256` of the UTF-8 text)."""

    ids: np.ndarray
    vocab: Vocabulary
    sha256: str
    source: str
    prepared: Path | None = None

    @property
    def chars(self) -> int:
        return len(self.ids)

    def info(self) -> dict[str, Any]:
        """What a checkpoint's summary records of its corpus."""
        out: dict[str, Any] = {
            "corpus": self.source,
            "corpus_chars": self.chars,
            "corpus_sha256": self.sha256,
        }
        if self.prepared is not None:
            out["corpus_prepared"] = str(self.prepared)
        return out

    def in_vocabulary(self, vocab: Vocabulary, *, what: str) -> Corpus:
        """This corpus with the ids of `vocab` (a resumed run's), which must hold every
        character of it; itself when the vocabularies are the same."""
        if vocab == self.vocab:
            return self
        unknown = [(i, c) for i, c in enumerate(self.vocab.chars) if c not in vocab]
        if unknown:
            at = [(c, int(p)) for i, c in unknown for p in np.flatnonzero(self.ids == i)[:3]]
            raise UnknownCharacterError(sorted(at, key=lambda u: u[1]), what=what)
        table = np.array([vocab.id_of(c) for c in self.vocab.chars], dtype=id_dtype(len(vocab)))
        return Corpus(table[self.ids], vocab, self.sha256, self.source, self.prepared)


def id_dtype(vocab_size: int) -> type[np.unsignedinteger[Any]]:
    """The smallest unsigned type that holds every id."""
    return np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.uint32


def is_prepared(path: str | Path) -> bool:
    """Whether `path` holds a corpus.json (of any type: `open_prepared` checks it)."""
    return (Path(path) / META_FILE).exists()


def prepare(source: str | Path, directory: str | Path) -> Corpus:
    """Write `source`'s ids and vocabulary into `directory` (replacing what a previous
    preparation left there) and open the result."""
    source, directory = Path(source), Path(directory)
    what = f"corpus {source}"
    check_file(source, what)
    seen = np.zeros(_CODE_POINTS, dtype=bool)
    chars, sha = 0, hashlib.sha256()
    for chunk, raw in _decoded(source, what):
        sha.update(raw)
        chars += len(chunk)
        seen[chunk] = True
    source_bytes = source.stat().st_size  # the file was just read: it is there
    if chars == 0:
        raise CorpusError(f"{what}: file is empty")
    if seen[0]:
        raise CorpusError(f"{what}: contains NUL characters, expected text")
    codes = np.flatnonzero(seen)
    vocab = Vocabulary(chr(c) for c in codes.tolist())
    table = np.zeros(_CODE_POINTS, dtype=id_dtype(len(vocab)))
    table[codes] = np.arange(len(codes))
    dtype = id_dtype(len(vocab))
    made = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".prepare-", dir=directory))
    except OSError as e:
        raise CorpusError(f"{directory}: cannot write there ({_reason(e)})") from e
    done = False
    try:
        with _writing(tmp / IDS_FILE, directory / IDS_FILE) as f:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                      "fortran_order": False, "shape": (chars,)}  # fmt: skip
            np.lib.format.write_array_header_1_0(f, header)
            for chunk, _ in _decoded(source, what):
                f.write(table[chunk].data)
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "source": str(source),
            "source_bytes": source_bytes,
            "chars": chars,
            "sha256": sha.hexdigest(),
            "vocab": vocab.to_list(),
        }
        with _writing(tmp / META_FILE, directory / META_FILE) as f:
            f.write(json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        for name in (IDS_FILE, META_FILE):  # the JSON last: it marks a finished preparation
            try:
                os.replace(tmp / name, directory / name)
            except OSError as e:
                raise CorpusError(f"{directory / name}: cannot write it ({_reason(e)})") from e
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if made and not done:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if it is empty
    return open_prepared(directory)


@contextlib.contextmanager
def _writing(path: Path, final: Path) -> Iterator[BinaryIO]:
    """`path` open for writing, written through to the disk when the block ends; a write
    that fails (a full disk: ENOSPC, or EFBIG past a file size limit) is a CorpusError
    naming `final`, the file it was to become."""
    try:
        with open(path, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CorpusError(f"{final}: cannot write it ({_reason(e)})") from e


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _decoded(source: Path, what: str) -> Iterator[tuple[np.ndarray, bytes]]:
    """The code points of `source`'s text, a chunk at a time, with the chunk's bytes
    (a leading byte-order mark left out)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    with files.open_regular(source, what, _STREAMED) as f:
        offset = len(_BOM) if f.read(len(_BOM)) == _BOM else 0
        f.seek(offset)
        while True:
            try:
                raw = f.read(_CHUNK_BYTES)
            except OSError as e:
                raise CorpusError(f"{what}: cannot read it ({_reason(e)})") from e
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the last chunk
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as e:
                raise CorpusError(
                    f"{what}: not valid UTF-8 (at byte offset {offset - pending + e.start}); "
                    "convert it to UTF-8 first, e.g. with iconv"
                ) from e
            if not raw:
                return
            offset += len(raw)
            yield np.frombuffer(text.encode("utf-32-le", "surrogatepass"), "<u4"), raw


def open_prepared(directory: str | Path) -> Corpus:
    """Map a prepared corpus read-only, checking that its files agree."""
    directory = Path(directory)
    what = f"prepared corpus {directory}"
    where = f"{what}: {META_FILE}"
    raw = files.read_regular(directory / META_FILE, where, _META)
    try:
        meta = files.loads_json(raw.decode("utf-8"), where, _META, MAX_META_DEPTH)
    except ValueError as e:  # not UTF-8, not JSON
        raise CorpusError(f"{what}: cannot read {META_FILE} ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CorpusError(f"{what}: {META_FILE} is not a prepared corpus's description")
    if meta.get("version") != VERSION:
        raise CorpusError(
            f"{what}: format version {meta.get('version')!r}, this charlm reads {VERSION}; "
            "prepare the corpus again"
        )
    try:
        vocab = Vocabulary.from_list(meta["vocab"])
        chars, sha = int(meta["chars"]), str(meta["sha256"])
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise CorpusError(f"{what}: damaged ({e}); prepare the corpus again") from e
    except Exception as e:  # a vocabulary error, with its own message
        raise CorpusError(f"{what}: {e}") from e
    ids = _map_ids(directory / IDS_FILE, what, chars, np.dtype(id_dtype(len(vocab))))
    for start in range(0, chars, _CHUNK_BYTES):  # an id beyond the vocabulary would crash
        if int(ids[start : start + _CHUNK_BYTES].max()) >= len(vocab):
            raise CorpusError(f"{what}: ids beyond the vocabulary; prepare the corpus again")
        _release(ids)
    return Corpus(ids, vocab, sha, str(meta.get("source", directory)), prepared=directory)


def _map_ids(path: Path, what: str, chars: int, dtype: np.dtype[Any]) -> np.ndarray:
    """The `chars` ids of `dtype` in the .npy file `path`, mapped read-only from the
    descriptor that was checked to be a regular file, and only if the file is exactly
    their size (ids missing from a shorter one would fault when read)."""
    again = "prepare the corpus again"
    with files.open_regular(path, f"{what}: {IDS_FILE}", _MAPPED) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"version {version} of the .npy format")
            header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
            shape, fortran, found = header(f)
            offset, size = f.tell(), os.fstat(f.fileno()).st_size
        except (ValueError, OSError) as e:
            raise CorpusError(f"{what}: {IDS_FILE} is damaged ({e}); {again}") from e
        if shape != (chars,) or fortran or found != dtype or chars < 1:
            raise CorpusError(
                f"{what}: {IDS_FILE} holds {shape} {found}, expected {chars} ids of {dtype}; "
                f"{again}"
            )
        if size != offset + chars * dtype.itemsize:
            raise CorpusError(
                f"{what}: {IDS_FILE} is {size:,} bytes, not a header and {chars:,} ids; {again}"
            )
        try:
            return np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape)
        except (ValueError, OSError) as e:
            raise CorpusError(f"{what}: {IDS_FILE} cannot be mapped ({e}); {again}") from e


def _release(ids: np.ndarray) -> None:
    """Let the mapped pages of `ids` that this process has touched go from its memory
    (they stay in the page cache; written ones are written back first)."""
    mapped = getattr(ids, "_mmap", None)
    if isinstance(mapped, mmap.mmap):
        if ids.flags.writeable:
            mapped.flush()
        mapped.madvise(mmap.MADV_DONTNEED)


def load_corpus(path: str | Path) -> Corpus:
    """The corpus at `path` as ids: a prepared directory mapped, a large text file
    prepared on the fly (into the cache), a small one encoded in memory."""
    path = Path(path)
    if path.is_dir() and is_prepared(path):
        return open_prepared(path)
    if path.is_file() and path.stat().st_size > PREPARE_ABOVE_BYTES:
        return _prepared_in_cache(path)
    text = read_corpus(path)
    vocab = Vocabulary.from_text(text)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    ids = vocab.encode_compact(text, what=f"corpus {path}").numpy()
    return Corpus(ids, vocab, sha, str(path))


def _prepared_in_cache(path: Path) -> Corpus:
    """A large text's preparation in the cache, keyed by its path, size and mtime;
    prepared again when any of them changes."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    directory = download.cache_dir() / "prepared" / key[:16]
    if is_prepared(directory):
        try:
            return open_prepared(directory)
        except CorpusError as e:
            log.warning("%s; preparing it again", e)
    log.warning("corpus %s is large: preparing its ids once, in %s", path, directory)
    return prepare(path, directory)
