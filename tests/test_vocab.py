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
