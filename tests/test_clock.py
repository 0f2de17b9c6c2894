"""A run's clock (charlm/training/clock.py): training time without the pauses, the speed
of the steps, and the budget's share, on a clock the test moves by hand."""

from __future__ import annotations

import pytest

from charlm.training import clock as clock_module
from charlm.training.clock import RunClock


class Hand:
    """A perf_counter that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def hand(monkeypatch: pytest.MonkeyPatch) -> Hand:
    h = Hand()
    monkeypatch.setattr(clock_module.time, "perf_counter", h)
    return h


def test_pauses_are_not_training_time(hand: Hand) -> None:
    c = RunClock(before_s=30.0, max_minutes=1.0, started=hand.now)
    hand.now += 12.0
    with c.paused():
        hand.now += 5.0  # a plot drawn: not training
    hand.now += 3.0
    assert c.spent() == pytest.approx(15.0)
    assert c.elapsed() == pytest.approx(45.0)  # the resumed run's 30 s before this one
    assert c.budget_share() == pytest.approx(15.0 / 60.0)  # this invocation's share only


def test_a_pause_that_raises_still_counts_as_a_pause(hand: Hand) -> None:
    c = RunClock(started=hand.now)
    with pytest.raises(ValueError), c.paused():
        hand.now += 2.0
        raise ValueError("a callback failed")
    assert c.paused_s == pytest.approx(2.0) and c.spent() == pytest.approx(0.0)


def test_speed_is_characters_over_step_time_and_no_budget_is_no_share(hand: Hand) -> None:
    c = RunClock(started=hand.now)
    assert c.chars_per_s == 0.0  # before any step
    c.count_step(0.5, 1_000)
    c.count_step(1.5, 3_000)
    hand.now += 10.0  # time outside the steps (evaluation) does not slow the speed
    assert c.chars_per_s == pytest.approx(4_000 / 2.0)
    assert c.budget_share() == 0.0
