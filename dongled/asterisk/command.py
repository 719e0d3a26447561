"""A channel driver that has no AMI actions, driven through Asterisk's CLI (`Action: Command`).

Apart from the AMI transport (ami.py) because it is a conversation of its own: CLI lines out,
printed text back, whose words alone say whether a stop was done, and a listing that shows
neither ports nor whole names. It sends through the transport it is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

from dongled.asterisk.device import DeviceEntry
from dongled.core.errors import AmiError
from dongled.drivers.base import CliVerbs
from dongled.drivers.quectel_cli import acknowledged, parse_device_settings, parse_show_devices

log = logging.getLogger(__name__)

# Sends one action, answers its reply (a panoramisk Message, or a list of them).
Send = Callable[[dict[str, str]], Awaitable[Any]]


class CliDriver:
    """One connection's CLI conversation with a CLI-only driver (the verbs are passed to each
    call: two such drivers may share a connection)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._cut_told: set[str] = set()  # cut IDs already warned of

    async def show_devices(
        self,
        verbs: CliVerbs,
        device: str | None,
        ports: Callable[[], Mapping[str, tuple[str, str]]],
        ask_ports: Callable[[], bool],
    ) -> dict[str, DeviceEntry]:
        """Every device, or just `device`. `ports`: the (data, audio) of each section, which
        the listing does not show; `ask_ports`: whether unknown ones may be asked of the
        driver."""
        lines = await self.command(verbs.show, verbs)
        known = dict(ports())
        entries = self._devices(lines, device, known)
        if not ask_ports():
            return entries
        return await self._with_ports(entries, known, verbs)

    async def reload(self, when: str, verbs: CliVerbs) -> None:
        said = await self.command(verbs.reload.format(when=when), verbs)
        if any(line.strip() for line in said):  # a reload prints nothing
            raise AmiError(f"reload refused: {' '.join(said)}", action="Command")

    async def command(self, line: str, verbs: CliVerbs) -> list[str]:
        """The output lines of one CLI command; AmiError when Asterisk refuses it."""
        said = " ".join(line.lower().split())
        if any(said.startswith(bad) for bad in verbs.never):
            # A last guard: nothing in dongled builds these lines.
            raise AmiError(f"refusing to send {line!r}: it crashes Asterisk", action="Command")
        reply = await self._send({"Action": "Command", "Command": line})
        if isinstance(reply, list):
            reply = reply[0]
        lines = _output(reply)
        if not reply.success:
            why = " ".join(x.strip() for x in lines if x.strip()) or str(
                reply.message or reply.response
            )
            raise AmiError(f"{line!r} refused: {why}", action="Command", reply=why)
        return lines

    async def scheduled(self, verb: str, template: str, device: str, verbs: CliVerbs) -> None:
        """Stop and start answer `[<device>] Stop scheduled` (or `Device not found`) with
        Response: Success either way: only the text says whether it was done."""
        lines = await self.command(template.format(device=device), verbs)
        if not acknowledged(verb, device, lines):
            said = " ".join(x.strip() for x in lines if x.strip()) or "nothing"
            raise AmiError(f"{verb} {device} refused: {said}", action="Command", reply=said)
        if verbs.one_at_a_time > 0:
            await self._until_done(verb, device, verbs)

    async def _until_done(self, verb: str, device: str, verbs: CliVerbs) -> None:
        """Poll the listing until the driver shows `verb` done for `device` (stopped, or no
        longer stopped), at most `one_at_a_time` seconds: then its device manager has read
        the command, and the next cannot add up with it (see CliVerbs.one_at_a_time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + verbs.one_at_a_time
        while loop.time() < deadline:
            listing = parse_show_devices(await self.command(verbs.show, verbs))
            rows = listing.find(device)
            if rows and (rows[0].state == "Stopped") == (verb == "stop"):
                return
            await asyncio.sleep(0.02)
        log.warning(
            "%s %s not shown done within %g s; sending the next command anyway",
            verb,
            device,
            verbs.one_at_a_time,
        )

    async def _with_ports(
        self,
        entries: dict[str, DeviceEntry],
        known: Mapping[str, tuple[str, str]],
        verbs: CliVerbs,
    ) -> dict[str, DeviceEntry]:
        """A connected device whose ports dongled does not know (it has not reloaded the
        driver since it started) gets them from the driver itself: what it read at its last
        load is what the device runs. So a dongled started while the driver runs can tell
        which module each device holds without stopping it."""
        if not verbs.settings:
            return entries
        for name, entry in entries.items():
            if not entry.connected or any(known.get(name, ("", ""))):
                continue
            said = await self.command(verbs.settings.format(device=name), verbs)
            ports = parse_device_settings(said)
            if ports is not None:
                entries[name] = replace(
                    entry,
                    data_setting=ports[0],
                    audio_setting=ports[1],
                    data_state=ports[0],
                    audio_state=ports[1],
                )
        return entries

    def _devices(
        self, lines: list[str], device: str | None, ports: Mapping[str, tuple[str, str]]
    ) -> dict[str, DeviceEntry]:
        listing = parse_show_devices(lines)
        if listing.unparsed:
            log.debug("unparsed lines in the device listing: %r", listing.unparsed)
        out: dict[str, DeviceEntry] = {}
        for row in listing.devices:
            name, alike = row.section_of(ports)  # the listing keeps 12 characters of a name
            if alike and row.device not in self._cut_told:
                self._cut_told.add(row.device)
                log.warning(
                    "devices %s share their first %d characters, which is all the "
                    "listing shows: dongled cannot tell them apart (rename them)",
                    ", ".join(sorted(alike)),
                    len(row.device),
                )
            if device is None or name == device:
                out[name] = DeviceEntry.from_cli(row, name, ports.get(name))
        return out


def _output(reply: Any) -> list[str]:
    """The lines a CLI command printed: Asterisk >= 14 sends them as `Output:` headers,
    which panoramisk gives as one string or a list; older ones as the message body."""
    value = reply.get("Output")
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        return [value]
    content = getattr(reply, "content", "") or ""
    return [line for line in str(content).splitlines() if line != "--END COMMAND--"]
