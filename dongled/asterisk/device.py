"""The device view: what a channel driver says of each of its devices, as dongled acts on it.

Apart from the AMI transport (ami.py, the only module that imports panoramisk) because nearly
every step reads a `DeviceEntry` and none of them needs to know how it was fetched. Here too
are the two seams between them: `DeviceControl`, what a pass drives, and `Transport`, what a
control sends through.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dongled.asterisk import network
from dongled.asterisk.network import Registration
from dongled.drivers.quectel_cli import CliDevice

# A driver resets its signal value to 0 ("<= -113 dBm") when the device disconnects, and asks
# for it (AT+CSQ) only once the device is initialized: while it shows one of these states its
# RSSI is that reset value, not a reading.
_NO_READING = ("Not connected", "Stopped", "Not initialized")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceEntry:
    """The fields of a `DongleDeviceEntry` that dongled acts on."""

    device: str
    data_setting: str
    audio_setting: str
    imei_setting: str
    state: str
    data_state: str
    audio_state: str
    imei_state: str
    imsi_state: str
    model: str
    calls: str
    current_state: str
    desired_state: str
    registration: Registration = Registration.UNKNOWN
    registration_text: str = ""  # the driver's words it was read from (RE: its State)
    rssi_dbm: int | None = None  # None: unknown, or no reading (not connected)
    voice: str = ""  # "Yes" / "No" once the device has initialized

    @property
    def registered(self) -> bool:
        return self.registration is Registration.REGISTERED

    @property
    def stopped(self) -> bool:
        return self.current_state == "stop" and self.desired_state == "stop"

    @property
    def connected(self) -> bool:
        return self.imei_state != "" and self.state not in ("Not connected", "Stopped")

    @classmethod
    def from_fields(cls, f: Mapping[str, str]) -> DeviceEntry:
        def g(key: str) -> str:
            value = f.get(key, "")
            return value.strip() if isinstance(value, str) else ""

        state = g("State")
        registration = g("GSMRegistrationStatus")
        return cls(
            device=g("Device"),
            data_setting=g("DataSetting"),
            audio_setting=g("AudioSetting"),
            imei_setting=g("IMEISetting"),
            state=state,
            data_state=g("DataState"),
            audio_state=g("AudioState"),
            imei_state=g("IMEIState"),
            imsi_state=g("IMSIState"),
            model=g("Model"),
            calls=g("CallsChannels"),
            current_state=g("CurrentDeviceState"),
            desired_state=g("DesiredDeviceState"),
            registration=network.registration_of(registration),
            registration_text=registration,
            rssi_dbm=None if state in _NO_READING else network.rssi_dbm(g("RSSI")),
            voice=g("Voice"),
        )

    @classmethod
    def from_cli(cls, row: CliDevice, name: str, ports: tuple[str, str] | None) -> DeviceEntry:
        """A row of a CLI-only driver's listing. It shows no ports and no desired state:
        `ports` are those the driver read for the device, as far as dongled knows them (empty
        strings: unknown), taken as open while the row says the device is connected;
        "Stopped" is the only stopped state it shows."""
        data, audio = ports or ("", "")
        is_open = row.connected
        run = "stop" if row.state == "Stopped" else "start"
        return cls(
            device=name,
            data_setting=data,
            audio_setting=audio,
            imei_setting="",
            state=row.state,
            data_state=data if is_open else "",
            audio_state=audio if is_open else "",
            imei_state=row.imei,
            imsi_state=row.imsi,
            model=row.model,
            calls="",
            current_state=run,
            desired_state=run,
            # No registration column: derived from the State (see registration_from_state).
            registration=network.registration_from_state(row.state),
            registration_text=row.state,
            rssi_dbm=None if row.state in _NO_READING else network.csq_dbm(row.rssi),
        )


class DeviceControl(Protocol):
    """What a reconcile pass needs of one channel driver in Asterisk: list its devices,
    reload it, stop and start one device. Every lane has one, built from its driver
    (`control.control_for`): its manager actions, or its CLI lines, over the shared AMI
    connection."""

    @property
    def connected(self) -> bool: ...
    async def show_devices(self, device: str | None = None) -> dict[str, DeviceEntry]: ...
    async def reload(self, when: str) -> None: ...
    async def stop(self, device: str) -> None: ...
    async def start(self, device: str) -> None: ...


class Transport(Protocol):
    """The one AMI connection every driver's control sends through (`ami.AmiClient`): it
    knows no driver."""

    @property
    def connected(self) -> bool: ...

    async def send(self, action: dict[str, str]) -> Any:
        """The reply to `action` (a message, or a list of them for a listing); AmiError when
        the connection is down or Asterisk does not answer in time."""
        ...
