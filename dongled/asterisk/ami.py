"""Asterisk's manager interface: the only module that imports panoramisk.

A thin typed adapter over panoramisk 1.4, which as used here reconnects on its own (even
after a refused first connect or a refused login, which it retries forever), keeps a pending
reconnect timer after close(), and leaves an action waiting forever on a peer that accepts
but never answers. So: no hidden reconnect loop (the daemon owns reconnects and their
backoff), a failed login raises, every await is bounded, a peer that stops answering closes
the connection, and close() is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from panoramisk import Manager

from dongled.asterisk import network
from dongled.asterisk.network import Registration
from dongled.config.settings import AmiSettings
from dongled.core.errors import AmiAuthError, AmiError, AmiTimeoutError
from dongled.drivers.base import AmiVerbs, CliVerbs
from dongled.drivers.chan_dongle import CHAN_DONGLE
from dongled.drivers.quectel import cli_acknowledged
from dongled.drivers.quectel_cli import CliDevice, parse_device_settings, parse_show_devices

log = logging.getLogger(__name__)

# panoramisk logs whole actions (the Login action carries the secret) at info level when
# it re-queues them: its logger stays disabled.
_quiet = logging.getLogger("dongled.asterisk.ami.panoramisk")
_quiet.disabled = True

_NEVER = 10**9  # seconds: panoramisk's pinger is a periodic wake-up we do not want
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
        is_open = row.state not in ("Stopped", "Not connected")
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
    reload it, stop and start one device. `AmiClient` is one (its driver's actions);
    `DriverLink` is another driver's actions over the same connection."""

    @property
    def connected(self) -> bool: ...
    async def show_devices(self, device: str | None = None) -> dict[str, DeviceEntry]: ...
    async def reload(self, when: str) -> None: ...
    async def stop(self, device: str) -> None: ...
    async def start(self, device: str) -> None: ...


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager without its own reconnect loop."""

    def __init__(self, on_lost: Callable[[], None], **config: Any) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # AmiClient.connect() awaits the same task and raises
        super().connection_made(f)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
        self.pinger = None
        # Fail, rather than silently re-send later, whatever was in flight. panoramisk drops
        # a pending Login silently: fail it too, so connect() says why at once.
        login = self.authenticated_future
        if login is not None and not login.done():
            login.set_exception(AmiError("Asterisk closed the connection during the login"))
        while self.awaiting_actions:
            action = self.awaiting_actions.popleft()
            if not action.future.done():
                action.future.set_exception(AmiError("connection to Asterisk lost"))
        self._on_lost()


class AmiClient:
    def __init__(
        self,
        settings: AmiSettings,
        on_lost: Callable[[], None] | None = None,
        verbs: AmiVerbs | CliVerbs = CHAN_DONGLE.ami,
        ports: Callable[[], Mapping[str, tuple[str, str]]] = dict,
        ask_ports: Callable[[], bool] = lambda: True,
    ) -> None:
        self._s = settings
        self._ask_ports = ask_ports  # whether unknown ports may be asked of the driver
        self._verbs = verbs  # the channel driver's actions or CLI lines (dongled.drivers)
        # The (data, audio) of each section: a CLI listing shows neither, and cuts names.
        self._ports = ports
        self._cut_told: set[str] = set()
        self._user_on_lost = on_lost
        self._manager: _Manager | None = None
        # Device status events taken (event name -> callback(device, status)): with any,
        # the login asks for the `call` read class, the only one they are sent in.
        self._status_events: dict[str, Callable[[str, str], None]] = {}

    def on_status_event(self, event: str, callback: Callable[[str, str], None]) -> None:
        """Call `callback(device, status)` for each `event` (DongleStatus, QuectelStatus)
        from the next login on."""
        self._status_events[event] = callback

    def _register(self, manager: _Manager) -> None:
        for event, callback in self._status_events.items():

            def dispatch(
                _m: object, msg: Any, callback: Callable[[str, str], None] = callback
            ) -> None:
                device, status = msg.get("Device"), msg.get("Status")
                if isinstance(device, str) and isinstance(status, str):
                    callback(device.strip(), status.strip())

            manager.register_event(event, dispatch)

    @property
    def connected(self) -> bool:
        return self._manager is not None

    def _lost(self) -> None:
        was = self._manager is not None
        self._drop()
        if was and self._user_on_lost is not None:
            self._user_on_lost()

    def _drop(self) -> None:
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.close()
            for action in list(getattr(manager, "responses", {}).values()):
                if not action.future.done():
                    action.future.set_exception(AmiError("connection to Asterisk closed"))

    async def connect(self) -> None:
        """Connect and log in; raises AmiError (AmiAuthError: refused) and leaves nothing open."""
        manager = _Manager(
            self._lost,
            host=self._s.host,
            port=self._s.port,
            username=self._s.username,
            secret=self._s.secret,
            events="call" if self._status_events else "off",
            ping_delay=_NEVER,
            ping_interval=_NEVER,
            reconnect_timeout=_NEVER,
            loop=asyncio.get_running_loop(),
            log=_quiet,
        )
        self._register(manager)
        where = f"{self._s.host}:{self._s.port}"
        try:
            async with asyncio.timeout(self._s.timeout):
                # connection_made (which sends the Login) is a done-callback of this task,
                # registered before our own wake-up, so it has run when we resume.
                await manager.connect()
                future = manager.authenticated_future
                if future is None:
                    raise AmiError(f"no login was sent to Asterisk at {where}")
                reply = await asyncio.shield(future)
        except TimeoutError:
            manager.close()
            raise AmiTimeoutError(f"Asterisk at {where} did not answer the login") from None
        except OSError as exc:
            manager.close()
            raise AmiError(f"cannot connect to Asterisk at {where}: {exc.strerror}") from None
        except (Exception, asyncio.CancelledError):
            manager.close()
            raise
        if not reply.success:
            manager.close()
            raise AmiAuthError(
                f"Asterisk at {where} refused the login of user {self._s.username!r}: "
                f"{reply.message or 'no reason given'} (check [ami] username/secret and "
                "manager.conf)"
            )
        self._manager = manager
        log.info("logged in to Asterisk AMI at %s as %s", where, self._s.username)

    async def close(self) -> None:
        self._drop()
        await asyncio.sleep(0)  # let the transport finish closing

    async def _send(self, action: dict[str, str]) -> Any:
        manager = self._manager
        if manager is None:
            raise AmiError("not connected to Asterisk")
        future = manager.send_action(action)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._s.timeout)
        except TimeoutError:
            # A peer that accepts but never answers: give up on this connection.
            self._lost()
            raise AmiTimeoutError(
                f"Asterisk did not answer {action['Action']} within {self._s.timeout:g} s",
                action=action["Action"],
            ) from None

    async def _simple(self, action: dict[str, str]) -> None:
        reply = await self._send(action)
        if isinstance(reply, list):
            reply = reply[0]
        if not reply.success:
            said = str(reply.message or reply.response)
            raise AmiError(
                f"{action['Action']} refused: {said}", action=action["Action"], reply=said
            )

    async def show_devices(
        self,
        device: str | None = None,
        *,
        verbs: AmiVerbs | CliVerbs | None = None,
        ports: Callable[[], Mapping[str, tuple[str, str]]] | None = None,
        ask_ports: Callable[[], bool] | None = None,
    ) -> dict[str, DeviceEntry]:
        """Every device, or just `device` (a listing whose cost does not grow with N, where
        the driver has one). `verbs`/`ports`: another driver's (DriverLink) than this
        client's own."""
        v = verbs or self._verbs
        if isinstance(v, CliVerbs):
            lines = await self._command(v.show, v)
            known = dict((ports or self._ports)())
            entries = self._cli_devices(lines, device, known)
            if not (ask_ports or self._ask_ports)():
                return entries
            return await self._with_ports(entries, known, v)
        action = {"Action": v.show}
        if device is not None:
            action["Device"] = device
        reply = await self._send(action)
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

    async def reload(self, when: str, *, verbs: AmiVerbs | CliVerbs | None = None) -> None:
        v = verbs or self._verbs
        if isinstance(v, CliVerbs):
            said = await self._command(v.reload.format(when=when), v)
            if any(line.strip() for line in said):  # a reload prints nothing
                raise AmiError(f"reload refused: {' '.join(said)}", action="Command")
            return
        await self._simple({"Action": v.reload, "When": when})

    async def stop(self, device: str, *, verbs: AmiVerbs | CliVerbs | None = None) -> None:
        v = verbs or self._verbs
        if isinstance(v, CliVerbs):
            await self._scheduled("stop", v.stop, device, v)
            return
        await self._simple({"Action": v.stop, "Device": device, "When": "now"})

    async def start(self, device: str, *, verbs: AmiVerbs | CliVerbs | None = None) -> None:
        v = verbs or self._verbs
        if isinstance(v, CliVerbs):
            await self._scheduled("start", v.start, device, v)
            return
        await self._simple({"Action": v.start, "Device": device})

    # ---- a driver driven through its CLI (Action: Command) ---------------------------

    async def _command(self, line: str, verbs: CliVerbs) -> list[str]:
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

    async def _scheduled(self, verb: str, template: str, device: str, verbs: CliVerbs) -> None:
        """Stop and start answer `[<device>] Stop scheduled` (or `Device not found`) with
        Response: Success either way: only the text says whether it was done."""
        lines = await self._command(template.format(device=device), verbs)
        if not cli_acknowledged(verb, device, lines):
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
            listing = parse_show_devices(await self._command(verbs.show, verbs))
            rows = [row for row in listing.devices if row.names(device)]
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
            said = await self._command(verbs.settings.format(device=name), verbs)
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

    def _cli_devices(
        self, lines: list[str], device: str | None, ports: Mapping[str, tuple[str, str]]
    ) -> dict[str, DeviceEntry]:
        listing = parse_show_devices(lines)
        if listing.unparsed:
            log.debug("unparsed lines in the device listing: %r", listing.unparsed)
        out: dict[str, DeviceEntry] = {}
        for row in listing.devices:
            name = row.device
            if row.device_cut:  # the listing keeps 12 characters of each name
                names = [n for n in ports if row.names(n)]
                if len(names) == 1:
                    name = names[0]
                elif len(names) > 1 and row.device not in self._cut_told:
                    self._cut_told.add(row.device)
                    log.warning(
                        "devices %s share their first %d characters, which is all the "
                        "listing shows: dongled cannot tell them apart (rename them)",
                        ", ".join(sorted(names)),
                        len(row.device),
                    )
            if device is None or name == device:
                out[name] = DeviceEntry.from_cli(row, name, ports.get(name))
        return out


class DriverLink:
    """One channel driver's actions (or CLI lines) over a connection another driver shares:
    a box running chan_dongle beside chan_quectel logs in to Asterisk once. `ports`: the
    driver's section ports, for a listing that shows none (see AmiClient)."""

    def __init__(
        self,
        client: AmiClient,
        verbs: AmiVerbs | CliVerbs,
        ports: Callable[[], Mapping[str, tuple[str, str]]] = dict,
        ask_ports: Callable[[], bool] = lambda: True,
    ) -> None:
        self._client = client
        self._verbs = verbs
        self._ports = ports
        self._ask_ports = ask_ports

    @property
    def connected(self) -> bool:
        return self._client.connected

    async def show_devices(self, device: str | None = None) -> dict[str, DeviceEntry]:
        return await self._client.show_devices(
            device, verbs=self._verbs, ports=self._ports, ask_ports=self._ask_ports
        )

    async def reload(self, when: str) -> None:
        await self._client.reload(when, verbs=self._verbs)

    async def stop(self, device: str) -> None:
        await self._client.stop(device, verbs=self._verbs)

    async def start(self, device: str) -> None:
        await self._client.start(device, verbs=self._verbs)


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


async def close_quietly(client: AmiClient) -> None:
    with contextlib.suppress(Exception):
        await client.close()
