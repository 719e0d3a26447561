"""The backoff rule, exactly and as properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dongled.core.backoff import Backoff, delay


def test_doubles_from_first_up_to_the_cap() -> None:
    assert [delay(n, first=0.5, cap=30.0) for n in range(1, 9)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]


def test_counter_resets_after_a_success() -> None:
    b = Backoff(first=2.0, cap=60.0)
    assert [b.next(), b.next(), b.next()] == [2.0, 4.0, 8.0]
    b.reset()
    assert b.next() == 2.0 and b.attempts == 1


def test_a_huge_attempt_count_is_the_cap_not_an_overflow() -> None:
    assert delay(10_000, first=0.02, cap=0.08) == 0.08


def test_the_cap_wins_even_over_first() -> None:
    """recovery.backoff = 2 with backoff_max = 0.4 is a valid setting: every wait is 0.4."""
    assert [delay(n, first=2.0, cap=0.4) for n in (1, 2, 3)] == [0.4, 0.4, 0.4]


@pytest.mark.parametrize(("attempt", "factor"), [(0, 2.0), (1, 0.5)])
def test_nonsense_is_refused(attempt: int, factor: float) -> None:
    with pytest.raises(ValueError, match=r"attempt|factor"):
        delay(attempt, first=1.0, cap=2.0, factor=factor)


@given(
    attempt=st.integers(min_value=1, max_value=5000),
    first=st.floats(min_value=0.001, max_value=100.0),
    extra=st.floats(min_value=0.0, max_value=1000.0),
    factor=st.floats(min_value=1.0, max_value=10.0),
)
def test_never_below_first_never_above_cap_never_shrinking(
    attempt: int, first: float, extra: float, factor: float
) -> None:
    cap = first + extra
    now = delay(attempt, first=first, cap=cap, factor=factor)
    assert first <= now <= cap
    assert delay(attempt + 1, first=first, cap=cap, factor=factor) >= now
