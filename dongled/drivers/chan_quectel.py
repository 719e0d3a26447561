"""chan_quectel (Quectel EC2x, SIMCom SIM7600 LTE modules), the IchthysMaranatha fork: a
renamed chan_dongle, so quectel.conf has the same device keys and its manager actions the
same shape (`Quectel*`). The RoEdAl fork has no manager actions of its own (only its CLI over
AMI `Command`) and is not wired yet; `quectel` and `quectel_cli` hold what it will need."""

from __future__ import annotations

from dongled.drivers.base import AmiVerbs, Driver
from dongled.parked import PARKED_AUDIO, PARKED_DATA

QUECTEL_IM = Driver(
    name="chan_quectel-im",
    module="chan_quectel.so",
    conf_path="/etc/asterisk/quectel.conf",
    parked=(PARKED_DATA, PARKED_AUDIO),
    ami=AmiVerbs(
        show="QuectelShowDevices",
        entry="QuectelDeviceEntry",
        reload="QuectelReload",
        stop="QuectelStop",
        start="QuectelStart",
    ),
    uac_key="quec_uac",  # with alsadev=; IM reads USB audio only for exactly "1"
    uac_on=frozenset({"1"}),
)
