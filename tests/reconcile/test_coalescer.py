"""When a pass runs (dongled/reconcile/coalescer.py), on a real event loop, real short waits."""

from __future__ import annotations

import asyncio
import time

from dongled.reconcile.coalescer import REMOVAL_QUIET, Coalescer


def test_a_removal_during_a_batch_wait_makes_the_pass_urgent() -> None:
    """A stick vanishing while a storm's pass waits for others to settle: the pass still runs
    as an urgent one (removals quiet, the hub summary), not as the batch it was waiting for."""
    arriving = {"yes": True}
    last_removal = {"t": 0.0}

    async def main() -> tuple[bool, float]:
        c = Coalescer(5.0, lambda _t: arriving["yes"], lambda: last_removal["t"])
        c.request(False)  # a stick identified, others still being probed: the leading pass
        await c.next_pass()
        c.request(False)  # the next one identified; the storm's pass waits for the rest
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
        assert await busy.next_pass() is False  # the leading pass: at once
        busy.request(False)
        start = time.monotonic()
        assert await busy.next_pass() is False  # the storm's: held
        return quick, time.monotonic() - start

    quick, capped = asyncio.run(main())
    assert quick < 1.0  # not held for its 5 s cap
    assert 0.25 <= capped < 2.0  # held, but never past its cap (0.3 s)


def test_the_first_pass_starts_at_once_and_the_one_after_it_gathers_the_storm() -> None:
    """Leading edge: a stick identified while others are still being probed has its pass at
    once. The pass asked for next (the others identified) is a storm's: it waits while sticks
    are still arriving (here: they never stop, so until its cap)."""
    asked: list[bool] = []

    def in_flight(trailing: bool) -> bool:
        asked.append(trailing)
        return True  # other sticks are settling or being probed, all the time

    async def main() -> tuple[float, float]:
        c = Coalescer(0.3, in_flight, lambda: 0.0)
        c.request(False)
        start = time.monotonic()
        await c.next_pass()
        first = time.monotonic() - start
        c.request(False)  # the next stick of a hub, identified during the first pass
        start = time.monotonic()
        await c.next_pass()
        return first, time.monotonic() - start

    first, second = asyncio.run(main())
    assert first < 0.05  # not held by the sticks still being probed
    assert 0.25 <= second < 2.0  # held while they kept arriving, up to its cap
    assert True in asked
