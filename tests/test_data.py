from pathlib import Path

import pytest
import torch

from charlm.data import GROUP_CHARS, MIN_VAL_CHARS, Streams, read_corpus, split_ranges
from charlm.errors import CorpusError


def test_read_corpus_utf8_and_bom(tmp_path: Path) -> None:
    p = tmp_path / "c.txt"
    p.write_bytes("\ufeffÅsa 🙂\r\nline".encode())
    assert read_corpus(p) == "Åsa 🙂\r\nline"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        (b"abc\xff\xfedef", "not valid UTF-8 (byte 0xff at offset 3)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    ],
)
def test_read_corpus_rejects_bad_files_naming_them(
    tmp_path: Path, content: bytes, message: str
) -> None:
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(CorpusError) as err:
        read_corpus(p)
    assert str(p) in str(err.value) and message in str(err.value)


def test_read_corpus_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus(tmp_path / "nope.txt")
    with pytest.raises(CorpusError, match="is a directory"):
        read_corpus(tmp_path)


def cut(text: str, val_fraction: float, mode: str = "interleaved") -> tuple[str, list[str], bool]:
    """`text` cut where `split_ranges` says: the training text, the validation blocks, and
    whether anything was held out."""
    r = split_ranges(len(text), val_fraction, mode)
    return "".join(text[a:b] for a, b in r.train), [text[a:b] for a, b in r.val], r.held_out


def test_small_corpus_is_not_split() -> None:
    train, val, held_out = cut("ab" * 100, 0.1)
    assert not held_out and train == "ab" * 100 and val == ["ab" * 100]


def test_tail_split() -> None:
    text = "".join(chr(97 + i % 26) for i in range(10_000))
    train, val, held_out = cut(text, 0.1, "tail")
    assert held_out and train == text[:9000] and val == [text[9000:]]


def test_interleaved_split_draws_validation_from_the_whole_corpus() -> None:
    # 30 "chapters" of GROUP_CHARS characters, each written in its own symbol.
    chapters = [chr(0x100 + i) for i in range(30)]
    text = "".join(c * GROUP_CHARS for c in chapters)
    train, val, held_out = cut(text, 0.1)
    val_chars = sum(len(b) for b in val)
    assert held_out
    assert len(train) + val_chars == len(text)
    assert abs(val_chars / len(text) - 0.1) < 0.01
    assert len({len(b) for b in val}) == 1  # equal blocks, read as parallel streams
    # Every chapter is represented in validation, first to last, and still trains.
    assert set("".join(val)) == set(chapters) == set(train)


def test_split_needs_two_characters() -> None:
    with pytest.raises(CorpusError, match="at least 2"):
        split_ranges(1, 0.1)
    assert MIN_VAL_CHARS > 0


def test_streams_are_contiguous_and_targets_shifted() -> None:
    ids = torch.arange(1001)
    st = Streams(ids, batch_size=4, seq_len=10)
    assert st.stream_len == 250
    starts = st.window_starts(3)
    x0, y0 = st.window(starts[0])
    assert x0.dtype == torch.int64 and x0.shape == (4, 10)
    assert torch.equal(y0, x0 + 1)
    x1, _ = st.window(starts[1])
    assert torch.equal(x1[:, 0], x0[:, -1] + 1)  # each stream continues where it stopped
    assert torch.equal(x0[:, 0], torch.tensor([3, 253, 503, 753]))


def test_streams_shrink_to_fit_short_text() -> None:
    st = Streams(torch.arange(6), batch_size=16, seq_len=32)
    assert st.seq_len == 5 and st.batch_size == 1
    offset = st.draw_offset(torch.Generator().manual_seed(0))
    assert list(st.window_starts(offset)) == [0]
