"""chan_quectel: how each fork is driven (facts in docs/chan_quectel.md). The modules
themselves and their AT dialect are dongled.modem.lte's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from dongled.conf.parked import PARKED_ALSADEV, PARKED_AUDIO, PARKED_DATA

# --- the forks ----------------------------------------------------------------------------------


class Fork(enum.StrEnum):
    IM = "im"  # IchthysMaranatha/asterisk-chan-quectel: chan_dongle renamed
    RE = "re"  # RoEdAl/asterisk-chan-quectel: a rewrite


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkFacts:
    """What dongled must do differently per fork (a proposal for the driver seam)."""

    fork: Fork
    config_file: str
    module: str  # for `Action: Reload` / `module reload`
    data_key: str
    audio_key: str
    uac_keys: tuple[tuple[str, str], ...]  # keys besides alsadev= that switch USB audio on
    imei_key: str | None  # None: the fork ignores imei= (dongled may still write it)
    ami_actions: bool  # False: only the CLI over `Action: Command`
    lock_files: bool  # /var/lock/LCK..<tty>; False: TIOCEXCL + flock on the tty only
    connects_at_load: bool  # False: the first connect comes one [general] interval later
    disconnects_on_init_error: bool
    never_send: tuple[str, ...]  # CLI commands that crash or corrupt Asterisk


IM = ForkFacts(
    fork=Fork.IM,
    config_file="quectel.conf",
    module="chan_quectel.so",
    data_key="data",
    audio_key="audio",
    uac_keys=(("quec_uac", "1"),),
    imei_key="imei",
    ami_actions=True,
    lock_files=True,
    connects_at_load=True,
    disconnects_on_init_error=True,
    never_send=(),
)
RE = ForkFacts(
    fork=Fork.RE,
    config_file="quectel.conf",
    module="chan_quectel.so",
    data_key="data",
    audio_key="audio",
    uac_keys=(("uac", "on"),),
    imei_key=None,
    ami_actions=False,
    lock_files=False,
    connects_at_load=False,
    disconnects_on_init_error=False,
    never_send=("quectel show device state", "simcom show device state"),
)


def connect_wait(facts: ForkFacts, interval: float, conversation: float) -> float:
    """How long after a pass a device may take to show its IMEI before it counts as missing:
    RE opens on its `[general] interval` timer (a lost or unopenable device waits for the next
    tick); IM, like chan_dongle, opens at once. `conversation`: the AT set-up's own time."""
    return conversation + (0.0 if facts.connects_at_load else interval)


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


def cli_command(facts: ForkFacts, verb: str, device: str = "") -> str:
    """The CLI line for `verb` (show, reload, stop, start, restart), the same in both forks.

    Stop and restart take effect now; `when convenient` would wait for calls to end."""
    if verb == "show":
        return "quectel show devices"
    if verb == "reload":
        return "quectel reload now"
    if verb in ("stop", "restart"):
        return f"quectel {verb} now {device}"
    if verb == "start":
        return f"quectel start {device}"
    raise ValueError(f"no CLI verb {verb!r}")


def cli_acknowledged(verb: str, device: str, lines: list[str]) -> bool:
    """Both forks print `[<device>] Stop scheduled` (Restart, Start) or an error text in the
    same place (`[<device>] Device not found`)."""
    want = f"[{device}] {verb.capitalize()} scheduled"
    return any(line.strip() == want for line in lines)


# --- parked sections ----------------------------------------------------------------------------


def parked_values(facts: ForkFacts, *, uac: bool) -> dict[str, str]:
    """The keys of a section whose module is absent: nothing a fork can open. With USB audio
    the ALSA name is parked too, so that no fork default (RE: `hw:Android`) applies."""
    if uac:
        return _port_values(facts, PARKED_DATA, None, PARKED_ALSADEV)
    return _port_values(facts, PARKED_DATA, PARKED_AUDIO, None)


def device_values(
    facts: ForkFacts, *, data: str, audio: str | None, alsadev: str | None, imei: str
) -> dict[str, str]:
    """The keys dongled writes for a located module: its data port, then either its serial
    voice port or its ALSA card, and imei= (RE ignores it: kept for people and for dongled)."""
    if (audio is None) == (alsadev is None):
        raise ValueError("a module has either a serial voice port or an ALSA card")
    return {**_port_values(facts, data, audio, alsadev), facts.imei_key or "imei": imei}


def _port_values(
    facts: ForkFacts, data: str, audio: str | None, alsadev: str | None
) -> dict[str, str]:
    values = {facts.data_key: data}
    if alsadev is not None:
        values.update(dict(facts.uac_keys))
        values["alsadev"] = alsadev
    elif audio is not None:
        values[facts.audio_key] = audio
    return values
