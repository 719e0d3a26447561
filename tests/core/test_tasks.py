"""The stall check of the long-lived tasks: which tasks are overdue (a pure decision), and
Tasks counting a running task that stopped marking progress as dead, said once per stall.
The real daemon with a hung task is in tests/core/test_supervision.py."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dongled.core.tasks import Tasks, overdue


def test_overdue_is_the_tasks_past_their_own_bound() -> None:
    progress = {"reconcile": 100.0, "ami": 100.0, "status": 109.0, "free": 0.0}
    bounds = {"reconcile": 5.0, "ami": 20.0, "status": 5.0}
    assert overdue(progress, bounds, now=110.0) == ["reconcile"]
    assert overdue(progress, bounds, now=105.0) == []  # exactly at the bound: not yet
    assert overdue(progress, bounds, now=121.0) == ["reconcile", "ami", "status"]
    assert overdue({}, bounds, now=1e9) == []  # "free" has no bound: never overdue


def test_a_running_task_that_stops_beating_is_dead_until_it_beats_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        hang = asyncio.Event()
        tasks = Tasks(lambda why: None)

        async def beating() -> None:
            while True:
                tasks.beat("beating")
                await asyncio.sleep(0.01)

        async def hung() -> None:
            tasks.beat("hung")
            await hang.wait()  # a future nobody completes
            while True:
                tasks.beat("hung")
                await asyncio.sleep(0.01)

        async def unbound() -> None:
            await hang.wait()
            await asyncio.Event().wait()

        tasks.keep("beating", beating, bound=0.1)
        tasks.keep("hung", hung, bound=0.1)
        tasks.keep("unbound", unbound)  # no bound: running is enough
        await asyncio.sleep(0.05)
        assert tasks.dead(1.0) == []
        await asyncio.sleep(0.15)
        dead = tasks.dead(1.0)
        assert len(dead) == 1 and dead[0].startswith("hung (no progress for"), dead
        assert tasks.dead(1.0)[0].startswith("hung")  # still dead on the next look...
        hang.set()
        await asyncio.sleep(0.03)
        assert tasks.dead(1.0) == []  # ...and alive once it moves again
        await tasks.close()

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    stalled = [r for r in caplog.records if "has made no progress" in r.getMessage()]
    assert len(stalled) == 1, [r.getMessage() for r in caplog.records]  # said once per stall
    assert "task hung" in stalled[0].getMessage()
    assert any("task hung makes progress again" in r.getMessage() for r in caplog.records)
