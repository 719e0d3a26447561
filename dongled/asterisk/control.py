"""Each lane's control of its driver in Asterisk, built from its `Driver` the same way for
every lane (`control_for`) over the one shared AMI connection.

A driver with manager actions (`AmiVerbs`: chan_dongle, chan_quectel-im) gets
`ActionControl`; one with only CLI lines (`CliVerbs`: chan_quectel-re) gets `CliControl`
(command.py). Apart from the transport (ami.py) because the transport knows no driver: it
logs in once and carries every driver's actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dongled.asterisk.command import CliControl
from dongled.asterisk.device import DeviceControl, DeviceEntry, Transport
from dongled.core.errors import AmiError
from dongled.drivers.base import AmiVerbs, Driver


class ActionControl:
    """One driver's devices in Asterisk, driven by its manager actions (a `DeviceControl`)."""

    def __init__(self, transport: Transport, verbs: AmiVerbs) -> None:
        self._transport = transport
        self._verbs = verbs

    @property
    def connected(self) -> bool:
        return self._transport.connected

    async def show_devices(self, device: str | None = None) -> dict[str, DeviceEntry]:
        """Every device, or just `device` (a listing whose cost does not grow with N)."""
        v = self._verbs
        action = {"Action": v.show}
        if device is not None:
            action["Device"] = device
        reply = await self._transport.send(action)
        messages = reply if isinstance(reply, list) else [reply]
        head = messages[0]
        if not head.success:
            said = str(head.message or head.response)
            raise AmiError(f"{v.show} refused: {said}", action=v.show, reply=said)
        out: dict[str, DeviceEntry] = {}
        for msg in messages[1:]:
            if msg.event == v.entry:
                entry = DeviceEntry.from_fields(msg)
                out[entry.device] = entry
        return out

    async def reload(self, when: str) -> None:
        await self._simple({"Action": self._verbs.reload, "When": when})

    async def stop(self, device: str) -> None:
        await self._simple({"Action": self._verbs.stop, "Device": device, "When": "now"})

    async def start(self, device: str) -> None:
        await self._simple({"Action": self._verbs.start, "Device": device})

    async def _simple(self, action: dict[str, str]) -> None:
        reply = await self._transport.send(action)
        if isinstance(reply, list):
            reply = reply[0]
        if not reply.success:
            said = str(reply.message or reply.response)
            raise AmiError(
                f"{action['Action']} refused: {said}", action=action["Action"], reply=said
            )


def control_for(
    transport: Transport,
    driver: Driver,
    ports: Callable[[], Mapping[str, tuple[str, str]]] = dict,
    ask_ports: Callable[[], bool] = lambda: True,
) -> DeviceControl:
    """`driver`'s control over `transport`. `ports` and `ask_ports` serve a driver whose
    listing shows no ports (see `CliControl`); a driver with manager actions has no use for
    them."""
    if isinstance(driver.ami, AmiVerbs):
        return ActionControl(transport, driver.ami)
    return CliControl(transport, driver.ami, ports, ask_ports)
