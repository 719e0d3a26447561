"""The test Asterisk's AMI transport: a real TCP listener, its sessions, the wire format.

What an action does is not decided here: `AmiServer` hands each message to `handle` (see
`fake_asterisk_actions`) and sends events to the sessions that asked for their class. Runs on
the FakeAsterisk loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .fake_asterisk_journal import Headers, Journal

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
GARBAGE = b"\x00\xff\xfe\x13garbage\x80\x81\r\n:::\r\nnot an ami line\x1b[0m\r\n\xc3\x28\r\n"
EVENT_CLASS = {"DongleStatus": "call", "DonglePortFail": "call", "FullyBooted": "system"}


@dataclass(eq=False)
class Session:
    writer: asyncio.StreamWriter
    authenticated: bool = False
    events: frozenset[str] = frozenset()
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def send(self, pairs: Iterable[tuple[str, str]]) -> None:
        if not self.writer.is_closing():
            self.writer.write(wire_format(pairs))


def wire_format(pairs: Iterable[tuple[str, str]]) -> bytes:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs).encode("utf-8") + b"\r\n"


class Message:
    """One AMI action: headers in order, looked up case-insensitively (first value wins)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs
        self._map: dict[str, str] = {}
        for key, value in pairs:
            self._map.setdefault(key.lower(), value)

    def get(self, key: str) -> str | None:
        return self._map.get(key.lower())

    def reply(self, response: str, message: str | None, *extra: tuple[str, str]) -> Headers:
        pairs: Headers = [("Response", response)]
        action_id = self.get("ActionID")
        if action_id is not None:
            pairs.append(("ActionID", action_id))
        if message is not None:
            pairs.append(("Message", message))
        pairs.extend(extra)
        return pairs


Handler = Callable[[Session, Message], bool]


class AmiServer:
    """The listener and its sessions. `never_answer`: no banner, no reply, no event;
    `garbage_mode`: line noise instead of every answer (both set by tests)."""

    def __init__(self, journal: Journal, handle: Handler) -> None:
        self._journal = journal
        self._handle = handle
        self.never_answer = False
        self.garbage_mode = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._sessions: set[Session] = set()

    async def listen(self, port: int) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close_listener(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Since Python 3.12.1 wait_closed() also waits for every connection the server
            # accepted: drop the sessions first, or it waits for clients that never hang up.
            await self.drop_sessions()
            await server.wait_closed()

    async def drop_sessions(self) -> None:
        sessions = list(self._sessions)
        for session in sessions:
            session.writer.transport.abort()
        tasks = [s.task for s in sessions if s.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)

    def emit(self, name: str, headers: Headers) -> None:
        """A driver's event: journaled, then sent to each session that reads its class."""
        self._journal.event(name, headers)
        if self.never_answer:
            return
        event_class = EVENT_CLASS.get(name, "call")
        pairs: Headers = [("Event", name), ("Privilege", f"{event_class},all"), *headers]
        for session in list(self._sessions):
            if session.authenticated and event_class in session.events:
                self._send(session, pairs)

    def _send(self, session: Session, pairs: Headers) -> None:
        if self.garbage_mode:
            if not session.writer.is_closing():
                session.writer.write(GARBAGE)
            return
        session.send(pairs)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(writer, task=asyncio.current_task())
        self._sessions.add(session)
        try:
            if self.garbage_mode:
                writer.write(GARBAGE)
            elif not self.never_answer:
                writer.write(BANNER)
            while True:
                pairs = await read_message(reader)
                if pairs is None:
                    break
                if not pairs:
                    continue
                if self.never_answer:
                    continue
                if self.garbage_mode:
                    writer.write(GARBAGE)
                    continue
                if not self._handle(session, Message(pairs)):
                    break
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # peer gone, or a line over the StreamReader limit: hang up
        finally:
            self._sessions.discard(session)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()


async def read_message(reader: asyncio.StreamReader) -> list[tuple[str, str]] | None:
    """Read header lines until a blank line; None at end of stream."""
    pairs: list[tuple[str, str]] = []
    while True:
        line = await reader.readline()
        if not line:
            return None
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not text.strip():
            return pairs
        key, sep, value = text.partition(":")
        if sep:
            pairs.append((key.strip(), value.strip()))
