"""chan_quectel (Quectel EC2x, SIMCom SIM7600 LTE modules), its two forks in use
(docs/chan_quectel.md says how they differ):

- IchthysMaranatha's (IM): a renamed chan_dongle, so quectel.conf has the same device keys and
  its manager actions the same shape (`Quectel*`);
- RoEdAl's (RE): a rewrite with no manager actions, only its CLI over AMI `Command` (its
  listing is read by `quectel_cli`), no lock files, and devices opened on its `[general]
  interval` timer.

The modules themselves and their AT dialect are `dongled.modem.lte`'s."""

from __future__ import annotations

from dongled.conf.parked import PARKED_AUDIO, PARKED_DATA
from dongled.drivers.base import AmiVerbs, CliVerbs, Driver
from dongled.drivers.quectel_cli import acknowledged, parse_device_settings, parse_show_devices

DEFAULT_INTERVAL = 15.0  # what RE's sample quectel.conf sets and its users keep


def interval_from(text: str, default: float = DEFAULT_INTERVAL) -> float:
    """`interval=` of the `[general]` section of a quectel.conf text, in seconds (`;` starts
    a comment); `default` when it is absent or not a positive number. Includes are not
    followed: a [general] interval set in an included file reads as the default."""
    section, found = "", default
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            section = line[1:].split("]", 1)[0].strip().lower()
            continue
        key, sep, value = line.partition("=")
        if section == "general" and sep and key.strip().lower() == "interval":
            try:
                seconds = float(value.strip().lstrip(">").strip())
            except ValueError:
                continue
            if seconds > 0:
                found = seconds
    return found


QUECTEL_IM = Driver(
    name="chan_quectel-im",
    module="chan_quectel.so",
    conf_key="chan_quectel",  # both forks read quectel.conf
    default_conf="/etc/asterisk/quectel.conf",
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
    module="chan_quectel.so",
    conf_key="chan_quectel",  # both forks read quectel.conf
    default_conf="/etc/asterisk/quectel.conf",
    parked=(PARKED_DATA, PARKED_AUDIO),
    ami=CliVerbs(
        show="quectel show devices",
        parse_listing=parse_show_devices,
        acknowledged=acknowledged,
        reload="quectel reload {when}",
        # `now`: `when convenient` would wait for the device's calls to end.
        stop="quectel stop now {device}",
        start="quectel start {device}",
        # They crash Asterisk on a device not registered since it connected (docs/chan_quectel.md).
        never=("quectel show device state", "simcom show device state"),
        settings="quectel show device settings {device}",
        parse_settings=parse_device_settings,
        one_at_a_time=12.0,
    ),
    lock_files=False,
    open_interval=interval_from,
    # RE reads uac= case-insensitively: on/true/yes the module's own card, ext an external
    # one, off/false/no (or anything else, with a warning) serial voice.
    uac_key="uac",
    uac_on=frozenset({"on", "true", "yes"}),
    uac_ext=frozenset({"ext"}),
)
