"""The connection to Asterisk: connect, notice its loss, reconnect with capped backoff, and
ask for an urgent pass once it is back (Asterisk may have restarted, or run unwatched)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from dongled.asterisk.ami import AmiClient
from dongled.core.backoff import Backoff
from dongled.core.errors import AmiAuthError, AmiError
from dongled.core.ratelimit import Repeats
from dongled.telemetry.eventlog import Event, emit

log = logging.getLogger(__name__)

FIRST_BACKOFF = 0.5


class AmiSupervisor:
    def __init__(
        self,
        ami: AmiClient,
        *,
        backoff_max: float,
        up: Callable[[], None],
        failed: Callable[[AmiError], None],
        beat: Callable[[], None] = lambda: None,
        idle: float = 10.0,
    ) -> None:
        self._ami = ami
        self._beat = beat  # progress, for the stall check (see tasks.py)
        self._idle = idle  # ...marked at least this often while connected
        self._backoff_max = backoff_max
        self._up = up  # reconnected: bring Asterisk to the right state now
        self._failed = failed
        self._lost = asyncio.Event()
        self._refused = Repeats()  # a failure that repeats: said once, then every 10 minutes

    def lost(self) -> None:
        """AmiClient's on_lost callback."""
        self._lost.set()

    async def connect_once(self) -> bool:
        try:
            await self._ami.connect()
        except AmiError as exc:
            self._failed(exc)
            self._say_down(exc)
            return False
        except Exception:
            log.exception("connecting to Asterisk AMI failed unexpectedly; `run` retries")
            return False
        self._refused.reset()
        emit(Event.AMI_UP, "connected to Asterisk AMI")
        return True

    def _say_down(self, exc: AmiError) -> None:
        say = self._refused.tell(str(exc), time.monotonic())
        emit(Event.AMI_DOWN, "Asterisk AMI: %s%s", exc, say.suffix, level=say.level)

    async def run(self) -> None:
        backoff = Backoff(first=FIRST_BACKOFF, cap=self._backoff_max)
        while True:
            self._beat()
            if self._ami.connected:
                self._lost.clear()
                while not self._lost.is_set():
                    with contextlib.suppress(TimeoutError):  # no task of its own, unlike wait_for
                        async with asyncio.timeout(self._idle):
                            await self._lost.wait()
                    self._beat()
                emit(Event.AMI_DOWN, "lost the connection to Asterisk AMI; reconnecting")
                backoff.reset()
            await asyncio.sleep(backoff.next())
            try:
                await self._ami.connect()
            except AmiAuthError as exc:
                self._failed(exc)
                self._say_down(exc)  # a refused login: once, then rarely (it will repeat)
                continue
            except AmiError as exc:
                self._failed(exc)
                log.debug("AMI reconnect failed: %s", exc)
                continue
            except Exception:
                # Not an AMI failure but a bug (ours or panoramisk's): reconnects must go on,
                # or dongled would never see Asterisk again while looking alive.
                log.exception("AMI reconnect failed unexpectedly; trying again")
                continue
            self._refused.reset()
            emit(Event.AMI_UP, "reconnected to Asterisk AMI")
            backoff.reset()
            self._up()
