"""Which ALSA card belongs to a module with USB audio, and what to write as `alsadev=`.

A Quectel EC25 says "Android" as its USB manufacturer and product and has no serial number:
its card id is `Android`, a second module's `Android_1`, and ids follow enumeration order, as
card numbers do. The forks' default `hw:Android` therefore means "whichever module enumerated
first". A card belongs to the module whose usb_device holds it in sysfs
(`<usb_device>/<interface>/sound/cardN`): that is the only link from the card to an IMEI.

dongled writes `hw:CARD=<id>` for the card under the probed module's usb_device, re-derived at
every pass like the tty paths. Ids can move when a module re-enumerates, exactly as ttyUSB
numbers do, and the same udev-driven pass catches both. Naming cards after their module (a
udev rule, or writing the card's `id` attribute) would make the name stable across reboots;
dongled does not rename cards today. What may be written as `alsadev=` is conf/alsadev.py's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dongled.conf.alsadev import usable_id

_CARD_PATH = re.compile(r"/sound/card([0-9]+)\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class SoundCard:
    sys_path: str  # /sys/devices/.../<usb_device>/<interface>/sound/cardN
    number: int
    id: str


def cards_from_sysfs(devices: Mapping[str, Mapping[str, str]]) -> list[SoundCard]:
    """`sound` devices (sys_path -> attributes) to cards, by number; controlC0, pcmC0D0p and
    anything without a usable `id`/`number` are left out."""
    cards = []
    for sys_path, attrs in devices.items():
        match = _CARD_PATH.search(sys_path)
        card_id = (attrs.get("id") or "").strip()
        number = (attrs.get("number") or "").strip()
        if match is None or not usable_id(card_id) or number != match.group(1):
            continue
        cards.append(SoundCard(sys_path=sys_path, number=int(number), id=card_id))
    return sorted(cards, key=lambda c: c.number)


def card_of(usb_device: str, cards: Iterable[SoundCard]) -> SoundCard | None:
    """The card under the usb_device at sys path `usb_device`; None if it has none, or more
    than one (then nothing tells which one carries the voice)."""
    prefix = usb_device.rstrip("/") + "/"
    mine = [c for c in cards if c.sys_path.startswith(prefix)]
    return mine[0] if len(mine) == 1 else None
