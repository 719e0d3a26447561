"""When a pass runs (dongled/coalescer.py), on a real event loop with real (short) waits."""

from __future__ import annotations

import asyncio
import time

from dongled.coalescer import REMOVAL_QUIET, Coalescer


def test_a_removal_during_a_batch_wait_makes_the_pass_urgent() -> None:
    """A stick vanishing while a pass waits for others to settle: the pass still runs as an
    urgent one (removals quiet, the hub summary), not as the batch it was waiting for."""
    arriving = {"yes": True}
    last_removal = {"t": 0.0}

    async def main() -> tuple[bool, float]:
        c = Coalescer(5.0, lambda _t: arriving["yes"], lambda: last_removal["t"])
        c.request(False)  # a stick identified; another still being probed
        waiter = asyncio.ensure_future(c.next_pass())
        await asyncio.sleep(0.1)
        assert not waiter.done()  # waits for the one being probed
        last_removal["t"] = time.monotonic()
        c.request(True)  # ...which is pulled
        start = time.monotonic()
        urgent = await asyncio.wait_for(waiter, 2.0)
        return urgent, time.monotonic() - start

    urgent, took = asyncio.run(main())
    assert urgent
    assert took >= REMOVAL_QUIET * 0.9  # removals had their quiet time


def test_nothing_arriving_runs_at_once_and_arrivals_are_waited_for_at_most_the_cap() -> None:
    async def main() -> tuple[float, float]:
        idle = Coalescer(5.0, lambda _t: False, lambda: 0.0)
        idle.request(False)
        start = time.monotonic()
        assert await idle.next_pass() is False
        quick = time.monotonic() - start
        busy = Coalescer(0.3, lambda _t: True, lambda: 0.0)  # a stick that never settles
        busy.request(False)
        start = time.monotonic()
        assert await busy.next_pass() is False
        return quick, time.monotonic() - start

    quick, capped = asyncio.run(main())
    assert quick < 1.0  # not held for its 5 s cap
    assert 0.25 <= capped < 2.0  # held, but never past its cap (0.3 s)


def test_the_first_pass_starts_at_once_and_one_right_after_it_waits_for_the_storm() -> None:
    """Leading edge: a stick identified while nothing else is settling or being probed has
    its pass at once, even though its own ports appeared a moment ago (the registry reports
    a recent arrival only to a trailing pass). A pass asked for right after that one is part
    of a storm: it waits for arrivals to be quiet (here: never, so until its cap)."""
    asked: list[bool] = []

    def recent_arrival(trailing: bool) -> bool:
        asked.append(trailing)
        return trailing  # a port appeared a moment ago; no stick is being probed

    async def main() -> tuple[float, float]:
        c = Coalescer(0.3, recent_arrival, lambda: 0.0)
        c.request(False)
        start = time.monotonic()
        await c.next_pass()
        first = time.monotonic() - start
        c.request(False)  # the next stick of a hub, identified during the first pass
        start = time.monotonic()
        await c.next_pass()
        return first, time.monotonic() - start

    first, second = asyncio.run(main())
    assert first < 0.05  # not held for the recent arrival
    assert 0.25 <= second < 2.0  # held while arrivals continued, up to its cap
    assert asked[0] is False and asked[-1] is True
