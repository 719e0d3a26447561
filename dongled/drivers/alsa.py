"""Which ALSA card belongs to a module with USB audio, and what to write as `alsadev=`.

A Quectel EC25 says "Android" as its USB manufacturer and product and has no serial number:
its card id is `Android`, a second module's `Android_1`, and ids follow enumeration order, as
card numbers do. The forks' default `hw:Android` therefore means "whichever module enumerated
first". A card belongs to the module whose usb_device holds it in sysfs
(`<usb_device>/<interface>/sound/cardN`): that is the only link from the card to an IMEI.

dongled writes `hw:CARD=<id>` for the card under the probed module's usb_device, re-derived at
every pass like the tty paths. Ids can move when a module re-enumerates, exactly as ttyUSB
numbers do, and the same udev-driven pass catches both. Naming cards after their module (a
udev rule, or writing the card's `id` attribute) would make the name stable across reboots:
`stable_card_id` proposes such an id; dongled does not rename cards today.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dongled.identity import valid_imei
from dongled.parked import PARKED_ALSADEV

_CARD_PATH = re.compile(r"/sound/card([0-9]+)\Z")
_CARD_ID = re.compile(r"^[A-Za-z0-9_-]{1,15}\Z")  # what the kernel keeps of an id


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


def alsadev_for(card_id: str) -> str:
    """The `alsadev=` value for the card with id `card_id`: by id, which ALSA resolves at
    open time (a number would be whichever card enumerated at that place)."""
    return f"hw:CARD={card_id}"


def usable_id(card_id: str) -> bool:
    """A card id dongled can name in a config: as the kernel keeps ids, and not ending in '-'
    (before a "; comment" that would make "--;", which Asterisk reads as the close of a block
    comment). A card with another id counts as no card: its section stays parked."""
    return _CARD_ID.match(card_id) is not None and not card_id.endswith("-")


def writable(alsadev: str) -> bool:
    """Whether dongled may write `alsadev` into a config: the parked name, or `hw:CARD=` and a
    usable card id."""
    card = alsadev.removeprefix("hw:CARD=")
    return alsadev == PARKED_ALSADEV or (card != alsadev and usable_id(card))


def card_named(alsadev: str, cards: Iterable[SoundCard]) -> SoundCard | None:
    """The card an `alsadev=` value opens now (`hw:Android`, `hw:CARD=Android,DEV=0`,
    `plughw:1`...), to verify a section after a pass; None if it names no present card."""
    _, sep, rest = alsadev.partition(":")
    if not sep:
        return None
    part = rest.split(",")[0].removeprefix("CARD=")
    for card in cards:
        if part == card.id or (part.isdigit() and int(part) == card.number):
            return card
    return None


def stable_card_id(imei: str) -> str:
    """An id to rename a module's card to ("dq" + the IMEI's last 13 digits: 15 characters,
    unique among modules that differ in them); never looks like a number or "Android"."""
    if not imei.isascii() or not valid_imei(imei):
        raise ValueError(f"not a valid IMEI: {imei!r}")
    return "dq" + imei[-13:]
