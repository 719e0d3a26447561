"""A minimal AMI client for the tests of the test Asterisk (asyncio streams).

Neither panoramisk nor dongled code, so that a bug in dongled's AMI adapter cannot hide a bug
in the fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

TIMEOUT = 3.0


@dataclass
class Msg:
    pairs: list[tuple[str, str]]

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in self.pairs:
            if k.lower() == key.lower():
                return v
        return default

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k.lower() == key.lower()]

    def keys(self) -> list[str]:
        return [k for k, _ in self.pairs]


@dataclass
class Ami:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    banner: bytes
    events: list[Msg] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @classmethod
    async def connect(cls, port: int) -> Ami:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        banner = await asyncio.wait_for(reader.readline(), TIMEOUT)
        return cls(reader, writer, banner)

    async def send(self, pairs: list[tuple[str, str]]) -> None:
        text = "".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n"
        self.writer.write(text.encode())
        await self.writer.drain()

    async def read(self) -> Msg | None:
        """One message (within TIMEOUT); None when the server hung up."""
        pairs: list[tuple[str, str]] = []
        async with asyncio.timeout(TIMEOUT):
            while True:
                raw = await self.reader.readline()
                if not raw:
                    return None
                line = raw.decode()
                assert line.endswith("\r\n"), f"not CRLF: {line!r}"
                if line == "\r\n":
                    if pairs:
                        return Msg(pairs)
                    continue
                key, _, value = line[:-2].partition(":")
                pairs.append((key, value.strip()))

    async def action(self, action: str, **headers: str) -> Msg:
        """Send an action with a fresh ActionID; the response to it (events kept aside)."""
        action_id = f"t{next(self._ids)}"
        await self.send([("Action", action), *headers.items(), ("ActionID", action_id)])
        while True:
            msg = await self.read()
            assert msg is not None, f"hung up while waiting for the answer to {action}"
            if msg.get("Response") is not None and msg.get("ActionID") == action_id:
                return msg
            self.events.append(msg)

    async def list_action(self, action: str, **headers: str) -> list[Msg]:
        """A list action: [response, entries..., complete event]."""
        response = await self.action(action, **headers)
        action_id = response["ActionID"]
        out = [response]
        while True:
            msg = await self.read()
            assert msg is not None
            if msg.get("ActionID") != action_id:
                self.events.append(msg)
                continue
            out.append(msg)
            if msg.get("EventList") == "Complete":
                return out

    async def login(self, secret: str = "s3cret", events: str = "on") -> Msg:
        return await self.action("Login", Username="dongled", Secret=secret, Events=events)

    async def event(self, match: Callable[[Msg], bool], wait: float = TIMEOUT) -> Msg:
        """The first event (kept or new) that matches, within `wait` seconds."""
        async with asyncio.timeout(wait):
            while True:
                for index, kept in enumerate(self.events):
                    if match(kept):
                        return self.events.pop(index)
                msg = await self.read()
                assert msg is not None, "hung up while waiting for an event"
                self.events.append(msg)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def status(device: str, value: str) -> Callable[[Msg], bool]:
    return lambda m: (
        m.get("Event") == "DongleStatus"
        and (m["Device"], m["Status"])
        == (
            device,
            value,
        )
    )
