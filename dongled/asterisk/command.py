"""The control of a channel driver that has no AMI actions, through Asterisk's CLI
(`Action: Command`): chan_quectel's RoEdAl fork.

Apart from the manager actions' control (control.py) because it is a conversation of its own:
CLI lines out, printed text back, whose words alone say whether a stop was done, and a listing
that shows neither ports nor whole names. It sends through the shared transport it is given,
and reads the answers with the parsers the driver's `CliVerbs` bring (RE's: `quectel_cli`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from dongled.asterisk.device import DeviceEntry, Transport
from dongled.core.errors import AmiError
from dongled.drivers.base import CliVerbs

log = logging.getLogger(__name__)


class CliControl:
    """One driver's devices in Asterisk, driven by its CLI lines (a `DeviceControl`).

    `ports`: the (data, audio) of each of its sections as dongled knows the driver read them,
    which the listing does not show; `ask_ports`: whether unknown ones may be asked of the
    driver (`CliVerbs.settings`)."""

    def __init__(
        self,
        transport: Transport,
        verbs: CliVerbs,
        ports: Callable[[], Mapping[str, tuple[str, str]]] = dict,
        ask_ports: Callable[[], bool] = lambda: True,
    ) -> None:
        self._transport = transport
        self._verbs = verbs
        self._ports = ports
        self._ask_ports = ask_ports
        self._warned_cut: set[str] = set()  # cut IDs already warned of

    @property
    def connected(self) -> bool:
        return self._transport.connected

    async def show_devices(self, device: str | None = None) -> dict[str, DeviceEntry]:
        """Every device, or just `device`."""
        lines = await self.command(self._verbs.show)
        known = dict(self._ports())
        entries = self._devices(lines, device, known)
        if not self._ask_ports():
            return entries
        return await self._with_ports(entries, known)

    async def reload(self, when: str) -> None:
        said = await self.command(self._verbs.reload.format(when=when))
        if any(line.strip() for line in said):  # a reload prints nothing
            raise AmiError(f"reload refused: {' '.join(said)}", action="Command")

    async def stop(self, device: str) -> None:
        await self._scheduled("stop", self._verbs.stop, device)

    async def start(self, device: str) -> None:
        await self._scheduled("start", self._verbs.start, device)

    async def command(self, line: str) -> list[str]:
        """The output lines of one CLI command; AmiError when Asterisk refuses it."""
        said = " ".join(line.lower().split())
        if any(said.startswith(bad) for bad in self._verbs.never):
            # A last guard: nothing in dongled builds these lines.
            raise AmiError(f"refusing to send {line!r}: it crashes Asterisk", action="Command")
        reply = await self._transport.send({"Action": "Command", "Command": line})
        if isinstance(reply, list):
            reply = reply[0]
        lines = _output(reply)
        if not reply.success:
            why = " ".join(x.strip() for x in lines if x.strip()) or str(
                reply.message or reply.response
            )
            raise AmiError(f"{line!r} refused: {why}", action="Command", reply=why)
        return lines

    async def _scheduled(self, verb: str, template: str, device: str) -> None:
        """Stop and start answer `[<device>] Stop scheduled` (or `Device not found`) with
        Response: Success either way: only the text says whether it was done."""
        lines = await self.command(template.format(device=device))
        if not self._verbs.acknowledged(verb, device, lines):
            said = " ".join(x.strip() for x in lines if x.strip()) or "nothing"
            raise AmiError(f"{verb} {device} refused: {said}", action="Command", reply=said)
        if self._verbs.one_at_a_time > 0:
            await self._until_done(verb, device)

    async def _until_done(self, verb: str, device: str) -> None:
        """Poll the listing until the driver shows `verb` done for `device` (stopped, or no
        longer stopped), at most `one_at_a_time` seconds: then its device manager has read
        the command, and the next cannot add up with it (see CliVerbs.one_at_a_time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._verbs.one_at_a_time
        while loop.time() < deadline:
            listing = self._verbs.parse_listing(await self.command(self._verbs.show))
            rows = listing.find(device)
            if rows and (rows[0].state == "Stopped") == (verb == "stop"):
                return
            await asyncio.sleep(0.02)
        log.warning(
            "%s %s not shown done within %g s; sending the next command anyway",
            verb,
            device,
            self._verbs.one_at_a_time,
        )

    async def _with_ports(
        self, entries: dict[str, DeviceEntry], known: Mapping[str, tuple[str, str]]
    ) -> dict[str, DeviceEntry]:
        """A connected device whose ports dongled does not know (it has not reloaded the
        driver since it started) gets them from the driver itself: what it read at its last
        load is what the device runs. So a dongled started while the driver runs can tell
        which module each device holds without stopping it."""
        verbs = self._verbs
        if not verbs.settings:
            return entries
        for name, entry in entries.items():
            if not entry.connected or any(known.get(name, ("", ""))):
                continue
            said = await self.command(verbs.settings.format(device=name))
            ports = verbs.parse_settings(said)
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
        listing = self._verbs.parse_listing(lines)
        if listing.unparsed:
            log.debug("unparsed lines in the device listing: %r", listing.unparsed)
        out: dict[str, DeviceEntry] = {}
        for row in listing.devices:
            name, alike = row.section_of(ports)  # the listing keeps 12 characters of a name
            if alike and row.device not in self._warned_cut:
                self._warned_cut.add(row.device)
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
