"""chan_quectel (Quectel EC2x, SIMCom SIM7600 LTE modules), its two forks in use:

- IchthysMaranatha's (IM): a renamed chan_dongle, so quectel.conf has the same device keys and
  its manager actions the same shape (`Quectel*`);
- RoEdAl's (RE): a rewrite with no manager actions, only its CLI over AMI `Command`, no lock
  files, and devices opened on its interval timer (`quectel` holds the facts of both)."""

from __future__ import annotations

from dongled.conf.parked import PARKED_AUDIO, PARKED_DATA
from dongled.drivers import quectel
from dongled.drivers.base import AmiVerbs, CliVerbs, Driver

QUECTEL_IM = Driver(
    name="chan_quectel-im",
    module="chan_quectel.so",
    conf_key="quectel_conf",
    parked=(PARKED_DATA, PARKED_AUDIO),
    ami=AmiVerbs(
        show="QuectelShowDevices",
        entry="QuectelDeviceEntry",
        reload="QuectelReload",
        stop="QuectelStop",
        start="QuectelStart",
    ),
    status_event="QuectelStatus",
    uac_key="quec_uac",  # with alsadev=; IM reads USB audio only for exactly "1"
    uac_on=frozenset({"1"}),
)

QUECTEL_RE = Driver(
    name="chan_quectel-re",
    module=quectel.RE.module,
    conf_key="quectel_conf",
    parked=(PARKED_DATA, PARKED_AUDIO),
    ami=CliVerbs(
        show=quectel.cli_command(quectel.RE, "show"),
        reload="quectel reload {when}",
        stop=quectel.cli_command(quectel.RE, "stop", "{device}"),
        start=quectel.cli_command(quectel.RE, "start", "{device}"),
        never=quectel.RE.never_send,
        settings="quectel show device settings {device}",
        one_at_a_time=12.0,
    ),
    lock_files=quectel.RE.lock_files,
    connects_at_once=quectel.RE.connects_at_load,
    # RE reads uac= case-insensitively: on/true/yes the module's own card, ext an external
    # one, off/false/no (or anything else, with a warning) serial voice.
    uac_key="uac",
    uac_on=frozenset({"on", "true", "yes"}),
    uac_ext=frozenset({"ext"}),
)
