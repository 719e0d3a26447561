"""Asterisk's manager interface: the only module that imports panoramisk.

A thin typed adapter over panoramisk 1.4, which as used here reconnects on its own (even
after a refused first connect or a refused login, which it retries forever), keeps a pending
reconnect timer after close(), and leaves an action waiting forever on a peer that accepts
but never answers. So: no hidden reconnect loop (the daemon owns reconnects and their
backoff), a failed login raises, every await is bounded, a peer that stops answering closes
the connection, and close() is final.

It knows no channel driver: one connection serves every lane, whose control (control.py)
sends its driver's actions or CLI lines through `send`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from panoramisk import Manager

from dongled.config.settings import AmiSettings
from dongled.core.errors import AmiAuthError, AmiError, AmiTimeoutError

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
    """The one AMI connection (the transport every driver's control sends through, see
    control.py): login, device status events, one action at a time bounded by the timeout."""

    def __init__(self, settings: AmiSettings, on_lost: Callable[[], None] | None = None) -> None:
        self._settings = settings
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
            host=self._settings.host,
            port=self._settings.port,
            username=self._settings.username,
            secret=self._settings.secret,
            events="call" if self._status_events else "off",
            ping_delay=_NEVER,
            ping_interval=_NEVER,
            reconnect_timeout=_NEVER,
            loop=asyncio.get_running_loop(),
            log=_quiet,
        )
        self._register(manager)
        where = f"{self._settings.host}:{self._settings.port}"
        try:
            async with asyncio.timeout(self._settings.timeout):
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
                f"Asterisk at {where} refused the login of user {self._settings.username!r}: "
                f"{reply.message or 'no reason given'} (check [ami] username/secret and "
                "manager.conf)"
            )
        self._manager = manager
        log.info("logged in to Asterisk AMI at %s as %s", where, self._settings.username)

    async def close(self) -> None:
        self._drop()
        await asyncio.sleep(0)  # let the transport finish closing

    async def send(self, action: dict[str, str]) -> Any:
        """The reply to `action`: a panoramisk message, or a list of them for a listing."""
        manager = self._manager
        if manager is None:
            raise AmiError("not connected to Asterisk")
        future = manager.send_action(action)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._settings.timeout)
        except TimeoutError:
            # A peer that accepts but never answers: give up on this connection.
            self._lost()
            raise AmiTimeoutError(
                f"Asterisk did not answer {action['Action']} within {self._settings.timeout:g} s",
                action=action["Action"],
            ) from None
