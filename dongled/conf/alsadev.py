"""The `alsadev=` values dongled may write: a sound card named by its id, or the parked name.
Which card belongs to which module is hotplug/soundcards.py's."""

from __future__ import annotations

import re

from dongled.conf.parked import PARKED_ALSADEV

_CARD_ID = re.compile(r"^[A-Za-z0-9_-]{1,15}\Z")  # what the kernel keeps of an id


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
