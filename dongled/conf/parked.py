"""The paths a parked section names: they cannot exist (`/dev/null` is no directory), and they
say why to an admin reading the config. Kept apart from the config model so that
`dongled status` can know them without loading it."""

from __future__ import annotations

PARKED_DATA = "/dev/null/dongled-stick-absent-data"
PARKED_AUDIO = "/dev/null/dongled-stick-absent-audio"
# An ALSA card id has at most 15 characters: this name can never open a real card, and it
# keeps a fork's default (RE: `hw:Android`) from applying to a parked USB-audio section.
PARKED_ALSADEV = "hw:CARD=dongled_card_absent"
