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
import logging
from collections.abc import Callable, Mapping
from typing import Any

from panoramisk import Manager

from dongled.asterisk.command import CliDriver
from dongled.asterisk.device import DeviceEntry
from dongled.config.settings import AmiSettings
from dongled.core.errors import AmiAuthError, AmiError, AmiTimeoutError
from dongled.drivers.base import AmiVerbs, CliVerbs
from dongled.drivers.chan_dongle import CHAN_DONGLE

log = logging.getLogger(__name__)

# panoramisk logs whole actions (the Login action carries the secret) at info level when
# it re-queues them: its logger stays disabled.
_quiet = logging.getLogger("dongled.asterisk.ami.panoramisk")
_quiet.disabled = True

_NEVER = 10**9  # seconds: panoramisk's pinger is a periodic wake-up we do not want


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
        self._cli = CliDriver(self._send)  # for a driver without AMI actions
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
            return await self._cli.show_devices(
                v, device, ports or self._ports, ask_ports or self._ask_ports
            )
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
            await self._cli.reload(when, v)
            return
        await self._simple({"Action": v.reload, "When": when})

    async def stop(self, device: str, *, verbs: AmiVerbs | CliVerbs | None = None) -> None:
        v = verbs or self._verbs
        if isinstance(v, CliVerbs):
            await self._cli.scheduled("stop", v.stop, device, v)
            return
        await self._simple({"Action": v.stop, "Device": device, "When": "now"})

    async def start(self, device: str, *, verbs: AmiVerbs | CliVerbs | None = None) -> None:
        v = verbs or self._verbs
        if isinstance(v, CliVerbs):
            await self._cli.scheduled("start", v.start, device, v)
            return
        await self._simple({"Action": v.start, "Device": device})


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
