"""The line-down watch at work: the `lines` task lists the devices every little while, hands
lines down too long with their stick plugged in to the recovery ladder (`offline` decides,
purely, which), and refreshes the per-line metrics. Separate from `offline` so that its
decisions stay pure, and from the daemon's wiring, which only starts the task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dongled.recovery.offline import OfflineWatch
from dongled.telemetry.eventlog import Event, emit

if TYPE_CHECKING:
    from dongled.hotplug.registry import StickRegistry
    from dongled.reconcile.lanes import Lanes
    from dongled.recovery.runner import Recovery
    from dongled.telemetry.metrics import Metrics


def listing_every(offline_after: float) -> float:
    """How often the `lines` task lists the devices."""
    return min(60.0, offline_after / 4) if offline_after > 0 else 60.0


async def watch_lines(
    offline_after: float,
    lanes: Lanes,
    registry: StickRegistry,
    metrics: Metrics,
    recovery: Recovery,
    beat: Callable[[], None] = lambda: None,  # the task's progress mark (core.tasks)
) -> None:
    """Lines down for `offline_after` s with their stick plugged in go to the recovery
    ladder. Each listing also refreshes the per-line metrics: a line's registration and
    signal change with no pass at all (the network drops a SIM), and a pass is the only
    other time they are read."""
    watch = OfflineWatch(offline_after)  # off (0): it hands nothing over
    every = listing_every(offline_after)
    while True:
        beat()
        await asyncio.sleep(every)
        entries = await lanes.listing()
        if entries is None:
            continue
        metrics.devices(entries)
        metrics.flush()
        present = {
            name: stick
            for name, sec in lanes.sections.items()
            if sec.imei and (stick := registry.stick_with(sec.imei)) is not None
        }
        ports = {name: stick.usb_port for name, stick in present.items()}
        for device, reason in watch.update(time.monotonic(), entries, ports):
            stick = present[device]
            emit(
                Event.LINE_DOWN,
                "%s with its stick at USB %s plugged in: handing it to recovery",
                reason,
                stick.usb_port,
                device=device,
                usb_port=stick.usb_port,
            )
            metrics.lines_down.inc()
            recovery.failing(stick.usb_port, reason, device, stick.usb_device)
