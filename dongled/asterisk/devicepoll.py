"""Polling Asterisk's device list while chan_dongle brings devices up (daemon and scan share it).

chan_dongle announces nothing when a device has read its stick's IMEI, so the only way to
see it is DongleShowDevices. A steady short poll while chan_dongle initializes (its ~11 AT
commands take a few hundred ms), then backing off: a device slow to come up costs little,
and nothing polls once the caller has no device left to wait for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import NamedTuple

from dongled.asterisk.device import DeviceControl, DeviceEntry

__all__ = ["FAST_FOR", "POLL", "POLL_SLOW", "Poll", "device_polls"]

POLL, FAST_FOR, POLL_SLOW = 0.025, 2.0, 0.5


class Poll(NamedTuple):
    entries: dict[str, DeviceEntry]
    whole: bool  # False: only the one device left was asked for; merge, do not replace


async def device_polls(
    ami: DeviceControl, pending: Mapping[str, object], seconds: float
) -> AsyncIterator[Poll]:
    """Yield Asterisk's devices while `pending` (the caller's own dict of device names, emptied
    by the caller as devices settle) is not empty, for at most `seconds`.
    AmiError propagates."""
    start = time.monotonic()
    while pending and (elapsed := time.monotonic() - start) < seconds:
        await asyncio.sleep(POLL if elapsed < FAST_FOR else POLL_SLOW)
        if len(pending) == 1:
            yield Poll(await ami.show_devices(next(iter(pending))), whole=False)
        else:
            yield Poll(await ami.show_devices(), whole=True)
