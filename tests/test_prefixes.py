"""Scoring resumes from the state part-way through a recent text
(`charlm.inference.prefixes`): whatever was scored before, the answer is the one a fresh
predictor gives reading the whole text."""

from __future__ import annotations

import pytest

from charlm.inference import Predictor, ScoreResult
from charlm.inference.prefixes import EVERY

from .conftest import CORPORA

TEXT = (CORPORA / "notes.txt").read_text(encoding="utf-8")[: 3 * EVERY + 40]


def fresh(p: Predictor) -> Predictor:
    """The same model with nothing remembered."""
    return Predictor(p.model, p.vocab, card=p.card)


def same(a: ScoreResult, b: ScoreResult) -> None:
    assert a.steps == b.steps
    assert a.bits_per_char == pytest.approx(b.bits_per_char, rel=1e-9)
    assert (a.min_prob, a.min_position) == (b.min_prob, b.min_position)
    assert a.next == b.next


def edits() -> list[str]:
    """Texts an editor would score one after another."""
    return [
        TEXT,
        TEXT + "x",  # typed at the end
        TEXT[:600] + "q" + TEXT[601:],  # changed past two marks
        TEXT[:100] + "q" + TEXT[101:],  # changed before the first mark
        TEXT[: 2 * EVERY + 1],  # cut just after a mark
        TEXT[: 2 * EVERY],  # ... and on it
        TEXT[:EVERY] + TEXT,  # the same prefix, then longer
        TEXT,  # back to the first
    ]


@pytest.mark.parametrize("start", [1, 2, EVERY, EVERY + 1, 700])
def test_a_sequence_of_edits_scores_as_reading_each_text_afresh(
    notes: Predictor, start: int
) -> None:
    editor = fresh(notes)
    for text in edits():
        got = editor.score(text, alternatives=2, start=start, next_top=3)
        want = fresh(notes).score(text, alternatives=2, start=start, next_top=3)
        same(got, want)
        assert [s.position for s in got.steps] == list(range(max(1, start), len(text)))


def test_the_next_distribution_is_predicts(notes: Predictor) -> None:
    text = TEXT[:300]
    result = notes.score(text, next_top=0)
    want = notes.predict(text, top_k=0).next
    assert [c.char for c in result.next] == [c.char for c in want]
    assert [c.prob for c in result.next] == pytest.approx([c.prob for c in want], abs=1e-6)
    assert notes.score(text).next == []
    assert len(notes.score(text, next_top=4).next) == 4


def test_a_resumed_score_reads_only_from_its_mark(notes: Predictor) -> None:
    """Typing at the end of a long text reads one block, not the text."""
    editor = fresh(notes)
    editor.score(TEXT)
    seen: list[int] = []
    model = editor.model
    handle = model.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    try:
        editor.score(TEXT + "x", start=len(TEXT))
    finally:
        handle.remove()
    assert sum(seen) == len(TEXT) + 1 - 1 - 3 * EVERY  # from the last mark to the end
