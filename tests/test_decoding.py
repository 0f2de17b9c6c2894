"""Continuous batching in the library: sequences stepped together, joining and leaving."""

from __future__ import annotations

import pytest
import torch

from charlm import Predictor, SampleConfig
from charlm.errors import InputError
from charlm.inference import Decoding


def _run(decoding: Decoding, steps: int | None = None) -> dict[int, str]:
    """Step `decoding` (`steps` times, or until it is empty); text by sequence id."""
    out: dict[int, str] = {}
    n = 0
    while len(decoding) and (steps is None or n < steps):
        for seq, char in decoding.step():
            out[id(seq)] = out.get(id(seq), "") + char
        n += 1
    return out


CASES = [
    ("the ", SampleConfig(length=120, seed=1)),
    ("a bird", SampleConfig(length=60, seed=2, temperature=0.7, top_k=5)),
    ("", SampleConfig(length=90, seed=3, top_p=0.9)),
    ("rain on the ", SampleConfig(length=100, temperature=0)),
]


def test_sequences_stepped_together_give_their_lone_texts(notes: Predictor) -> None:
    alone = [notes.generate(prompt, config).text for prompt, config in CASES]
    decoding = Decoding(notes)
    seqs = [decoding.join(prompt, config) for prompt, config in CASES]
    assert len(decoding) == len(CASES)
    texts = _run(decoding)
    assert [texts[id(s)] for s in seqs] == alone
    assert all(s.done for s in seqs) and len(decoding) == 0
    assert [len(t) for t in alone] == [c.length for _, c in CASES]  # each left at its length


def test_batched_logits_match_lone_ones_to_float32_rounding(notes: Predictor) -> None:
    together = Decoding(notes)
    lone = [Decoding(notes) for _ in CASES]
    for (prompt, config), single in zip(CASES, lone, strict=True):
        together.join(prompt, config)
        single.join(prompt, config)
    for _ in range(50):
        rows = torch.cat([single._logits for single in lone])
        assert torch.allclose(together._logits, rows, atol=1e-5, rtol=0)
        together.step()
        for single in lone:
            single.step()


def test_sequences_join_and_leave_between_steps(notes: Predictor) -> None:
    first_config = SampleConfig(length=200, seed=7)
    want_first = notes.generate("the ", first_config).text
    want_late = notes.generate("wood", SampleConfig(length=30, seed=8)).text
    decoding = Decoding(notes)
    first = decoding.join("the ", first_config)
    got = _run(decoding, steps=25)
    late = decoding.join("wood", SampleConfig(length=30, seed=8))  # joins mid-way
    dropped = decoding.join("seed", SampleConfig(length=500, seed=9))
    for key, text in _run(decoding, steps=10).items():
        got[key] = got.get(key, "") + text
    decoding.drop(dropped)  # its client has gone
    assert dropped.done and len(decoding) == 2
    for key, text in _run(decoding).items():
        got[key] = got.get(key, "") + text
    assert got[id(first)] == want_first
    assert got[id(late)] == want_late
    assert len(got[id(dropped)]) == 10


def test_a_zero_length_sequence_never_joins_and_a_bad_prompt_is_refused(
    notes: Predictor,
) -> None:
    decoding = Decoding(notes)
    seq = decoding.join("the", SampleConfig(length=0))
    assert seq.done and len(decoding) == 0 and decoding.step() == []
    with pytest.raises(InputError, match=r"never seen: '.x00' at position 4"):
        decoding.join("the \x00", SampleConfig(length=5))
    assert len(decoding) == 0
