"""A refused AMI login, retried with the daemon's capped backoff for an hour: said at ERROR
once, then at DEBUG, and again at ERROR every 10 minutes with a count."""

from __future__ import annotations

import itertools
import logging

import pytest

from dongled.core.ratelimit import Repeats
from dongled.telemetry.eventlog import Event, emit

REFUSED = "Asterisk refused the login of user dongled (wrong username or secret?)"


def _retry_times(hours: float, backoff_max: float = 30.0) -> list[float]:
    """When the daemon's AMI loop retries: 0.5 s doubling up to backoff_max."""
    t, backoff, out = 0.0, 0.5, []
    while t < hours * 3600:
        out.append(t)
        t += backoff
        backoff = min(backoff * 2, backoff_max)
    return out


def test_an_hour_of_refused_logins_is_said_seven_times() -> None:
    rep = Repeats(every=600.0)
    said = [(t, rep.tell(REFUSED, t)) for t in _retry_times(1.0)]
    loud = [(t, s.suffix) for t, s in said if s.level == logging.ERROR]
    assert len(said) > 120  # what the journal used to get at ERROR
    assert [t for t, _ in loud][:1] == [0.0] and len(loud) == 6  # 0, ~10, ~20, ... ~50 min
    assert all(b - a >= 600 for (a, _), (b, _) in itertools.pairwise(loud))
    assert loud[0][1] == ""
    assert loud[1][1].startswith(" (still failing: ") and "more attempts in 6" in loud[1][1]
    assert sum(1 for _, s in said if s.level == logging.DEBUG) == len(said) - 6


def test_a_different_failure_or_one_after_success_is_news() -> None:
    rep = Repeats(every=600.0)
    assert rep.tell(REFUSED, 0).level == logging.ERROR
    assert rep.tell(REFUSED, 1).level == logging.DEBUG
    assert rep.tell("connection refused", 2).level == logging.ERROR  # another cause
    rep.reset()  # logged in
    assert rep.tell("connection refused", 3).level == logging.ERROR


def test_emit_takes_the_quiet_level(caplog: pytest.LogCaptureFixture) -> None:
    rep = Repeats()
    caplog.set_level(logging.DEBUG, logger="dongled.events")
    for t in (0.0, 1.0):
        say = rep.tell(REFUSED, t)
        emit(Event.AMI_DOWN, "Asterisk AMI: %s%s", REFUSED, say.suffix, level=say.level)
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.DEBUG]
    assert caplog.records[1].__dict__["DONGLED_EVENT"] == "ami-down"
