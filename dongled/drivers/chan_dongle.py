"""chan_dongle (Huawei 3G sticks): dongle.conf and the `Dongle*` manager actions."""

from __future__ import annotations

from dongled.conf.parked import PARKED_AUDIO, PARKED_DATA
from dongled.drivers.base import AmiVerbs, Driver

CHAN_DONGLE = Driver(
    name="chan_dongle",
    module="chan_dongle.so",
    conf_key="chan_dongle",
    default_conf="/etc/asterisk/dongle.conf",
    parked=(PARKED_DATA, PARKED_AUDIO),
    ami=AmiVerbs(
        show="DongleShowDevices",
        entry="DongleDeviceEntry",
        reload="DongleReload",
        stop="DongleStop",
        start="DongleStart",
    ),
    status_event="DongleStatus",
)
