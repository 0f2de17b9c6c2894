"""Characters outside the vocabulary: refuse, skip or replace (charlm.inference.unknown).

Skipping a character must give exactly the answer for the text without it, at the
positions of the text as given; replacing it, the answer for the text with the
replacement in its place."""

import math

import pytest

from charlm.errors import ConfigError, InputError, UnknownCharacterError
from charlm.inference import Predictor
from charlm.inference.logprobs import text_logprobs

TEXT = "the wren came back to the woodpile. "
# What copying from a web page gives: a curly apostrophe and a non-breaking space.
PASTED = "the wren\u2019s nest came\u00a0back to the woodpile. "


def without(text: str, positions: set[int]) -> str:
    return "".join(c for i, c in enumerate(text) if i not in positions)


def test_refuse_is_the_default_and_names_each_character(notes: Predictor) -> None:
    for call in (notes.score, notes.predict, notes.query):
        with pytest.raises(UnknownCharacterError) as e:
            call(PASTED)
        assert [c for c, _ in e.value.unknown] == ["\u2019", "\u00a0"]
        assert [i for _, i in e.value.unknown] == [PASTED.index("\u2019"), PASTED.index("\u00a0")]


def test_skip_scores_the_text_without_the_unknown_characters(notes: Predictor) -> None:
    unknown = {PASTED.index("\u2019"), PASTED.index("\u00a0")}
    plain = without(PASTED, unknown)
    got = notes.score(PASTED, alternatives=3, on_unknown="skip")
    want = notes.score(plain, alternatives=3)
    assert got.text == PASTED
    assert [(u.char, u.position) for u in got.unknown] == [
        ("\u2019", PASTED.index("\u2019")),
        ("\u00a0", PASTED.index("\u00a0")),
    ]
    assert not want.unknown
    kept = [i for i in range(len(PASTED)) if i not in unknown]
    # every known character but the first has a step, at its place in the text as given
    assert [s.position for s in got.steps] == kept[1:]
    for g, w in zip(got.steps, want.steps, strict=True):
        assert g.char == PASTED[g.position] == w.char
        assert g.prob == pytest.approx(w.prob, abs=1e-6)
        assert g.rank == w.rank and g.top == w.top
    assert got.bits_per_char == pytest.approx(want.bits_per_char, rel=1e-6)
    assert got.min_position == kept[want.min_position]
    # the character after the skipped one is predicted from the state before it
    after = PASTED.index("\u2019") + 1
    direct = notes.predict(PASTED[: after - 1], top_k=0).next
    step = next(s for s in got.steps if s.position == after)
    p = {c.char: c.prob for c in direct}[PASTED[after]]
    assert step.prob == pytest.approx(p, abs=1e-6)


def test_skip_lists_steps_from_start_in_the_text_as_given(notes: Predictor) -> None:
    whole = notes.score(PASTED, on_unknown="skip")
    start = PASTED.index("\u2019")  # the skipped character itself: the steps after it
    part = notes.score(PASTED, on_unknown="skip", start=start)
    assert part.steps == [s for s in whole.steps if s.position >= start]
    assert part.bits_per_char == whole.bits_per_char


def test_replace_reads_the_replacement_in_place(notes: Predictor) -> None:
    got = notes.score(PASTED, on_unknown="replace", replacement=" ")
    want = notes.score(PASTED.replace("\u2019", " ").replace("\u00a0", " "))
    assert got.text == PASTED
    assert [u.char for u in got.unknown] == ["\u2019", "\u00a0"]
    assert [(s.position, s.char, s.prob) for s in got.steps] == [
        (s.position, s.char, s.prob) for s in want.steps
    ]
    assert got.bits_per_char == want.bits_per_char


def test_predict_skips_or_replaces(notes: Predictor) -> None:
    text = "the wren\u2019"
    skipped = notes.predict(text, top_k=5, continuation_length=4, on_unknown="skip")
    assert skipped.next == notes.predict("the wren", top_k=5).next
    assert skipped.continuation == notes.predict("the wren", continuation_length=4).continuation
    assert [(u.char, u.position) for u in skipped.unknown] == [("\u2019", 8)]
    replaced = notes.predict(text, top_k=5, on_unknown="replace", replacement="e")
    assert replaced.next == notes.predict("the wrene", top_k=5).next
    queries = [notes.query(t, 3, on_unknown="skip") for t in (text, "tho\u2019 ", TEXT)]
    batch = notes.predict_batch(queries)
    for t, answer in zip(("the wren", "tho ", TEXT), batch, strict=True):
        assert [c.char for c in answer.next] == [c.char for c in notes.predict(t, 3).next]


def test_logprobs_skip_gives_null_entries_and_keeps_every_character(notes: Predictor) -> None:
    got = text_logprobs(notes, PASTED, top=2, on_unknown="skip")
    assert "".join(got.tokens) == PASTED
    assert got.text_offset == list(range(len(PASTED)))
    nulls = [i for i, lp in enumerate(got.token_logprobs) if lp is None]
    assert nulls == [0, PASTED.index("\u2019"), PASTED.index("\u00a0")]
    scored = notes.score(PASTED, alternatives=2, on_unknown="skip")
    for s in scored.steps:
        assert got.token_logprobs[s.position] == pytest.approx(math.log(s.prob), abs=1e-9)
    # from part-way, with the last character unknown
    tail = text_logprobs(notes, "the wren\u2019", start=3, on_unknown="skip")
    assert tail.tokens == list(" wren\u2019") and tail.token_logprobs[-1] is None
    assert all(lp is not None for lp in tail.token_logprobs[:-1])
    with pytest.raises(UnknownCharacterError):
        text_logprobs(notes, PASTED)


def test_bad_policies_are_refused_by_name(notes: Predictor) -> None:
    with pytest.raises(ConfigError, match="on_unknown must be one of refuse, skip, replace"):
        notes.score(TEXT, on_unknown="drop")
    with pytest.raises(InputError, match="replacement must be one character"):
        notes.score(PASTED, on_unknown="replace")
    with pytest.raises(InputError, match="not in the model's vocabulary"):
        notes.score(PASTED, on_unknown="replace", replacement="\u2019")
    with pytest.raises(InputError, match="only used when on_unknown is 'replace'"):
        notes.predict(TEXT, on_unknown="skip", replacement=" ")
    with pytest.raises(InputError, match="1 character the model knows"):
        notes.score("\u2019a\u2019", on_unknown="skip")
    with pytest.raises(InputError, match="0 characters the model knows"):
        notes.predict("\u2019\u2019", on_unknown="skip")
