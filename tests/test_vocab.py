import pytest
import torch

from charlm.errors import IncompatibleCheckpointError, UnknownCharacterError
from charlm.vocab import Vocabulary


def test_from_text_is_sorted_unique_and_deterministic() -> None:
    v = Vocabulary.from_text("hello world")
    assert v.chars == (" ", "d", "e", "h", "l", "o", "r", "w")
    assert Vocabulary.from_text("world hello") == v


def test_encode_decode_round_trip_any_unicode() -> None:
    text = "naïve café — 日本語 🙂\n\tÅngström"
    v = Vocabulary.from_text(text)
    ids = v.encode(text)
    assert ids.dtype == torch.int64 and ids.shape == (len(text),)
    assert v.decode(ids) == text
    assert v.decode(ids.tolist()) == text


def test_unknown_characters_are_named_with_positions() -> None:
    v = Vocabulary.from_text("abc")
    with pytest.raises(UnknownCharacterError) as err:
        v.encode("abxcy")
    assert err.value.unknown == [("x", 2), ("y", 4)]
    assert str(err.value) == (
        "text has characters the model has never seen: 'x' at position 2; 'y' at position 4"
    )


def test_many_unknown_characters_are_summarised() -> None:
    v = Vocabulary.from_text("a")
    with pytest.raises(UnknownCharacterError, match=r"'b' at positions 0, 1, 2 and 22 more$"):
        v.check("b" * 25)
    with pytest.raises(UnknownCharacterError, match=r"; and 2 more distinct characters$"):
        v.check("bcdefghijklm")


def test_list_round_trip_and_validation() -> None:
    v = Vocabulary.from_text("xyz\n")
    assert Vocabulary.from_list(v.to_list()) == v
    for bad in ([], ["ab"], ["a", "a"], [1]):
        with pytest.raises(IncompatibleCheckpointError):
            Vocabulary.from_list(bad)


@pytest.mark.parametrize(
    ("text", "dtype"),
    [
        ("hello world", torch.uint8),
        ("emoji \U0001f600 and \u00e9", torch.uint8),
        ("".join(chr(0x4E00 + i) for i in range(300)) + "ab", torch.int16),
    ],
)
def test_encode_compact_matches_encode(text: str, dtype: torch.dtype) -> None:
    vocab = Vocabulary.from_text(text)
    compact = vocab.encode_compact(text * 3)
    assert compact.dtype == dtype
    assert torch.equal(compact.long(), vocab.encode(text * 3))


def test_encode_compact_names_unknown_characters() -> None:
    vocab = Vocabulary.from_text("abc")
    for text in ("abd", "ab\U0001f600", "a" * 3_000_000 + "z"):  # past the table, past a chunk
        with pytest.raises(UnknownCharacterError) as info:
            vocab.encode_compact(text, what="training text")
        assert "training text" in str(info.value)
