"""The channel drivers a box can name in `driver =` (dongled's settings)."""

from __future__ import annotations

from dongled.drivers.base import Driver
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.drivers.chan_quectel import QUECTEL_IM, QUECTEL_RE

DRIVERS: dict[str, Driver] = {d.name: d for d in (CHAN_DONGLE, QUECTEL_IM, QUECTEL_RE)}


def drivers_for(value: str) -> tuple[Driver, ...]:
    """The drivers a checked `driver =` setting names (`chan_dongle+chan_quectel-im`: two)."""
    return tuple(DRIVERS[name] for name in value.split("+"))


def conf_files() -> dict[str, tuple[str, tuple[str, ...]]]:
    """The keys of the `[drivers]` settings table: each file family's default path and the
    drivers that read it (`chan_quectel`: both forks' quectel.conf)."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    for d in DRIVERS.values():
        default, names = out.get(d.conf_key, (d.default_conf, ()))
        out[d.conf_key] = default, (*names, d.name)
    return out
