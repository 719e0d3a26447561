"""A TCP proxy between dongled and the test Asterisk that counts connections and can cut one.

Runs its own event loop in a thread. `connections` counts every connection dongled opened
(also while the Asterisk behind is down: the proxy accepts and closes, like a reset).
`cut_list_once()` makes the proxy hang up both sides in the middle of the next
DongleShowDevices answer (after the first DongleDeviceEntry has started to flow).
`hold_list_once()` makes it sit on the next DongleShowDevices answer until `release()`:
`holding` is set while dongled waits for it, so a test can act in that window.
`actions` records every action the client sent: (time.monotonic(), Action, its headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.rig import Rig


class AmiProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self.cuts = 0
        self._cut_pending = False
        self._hold_pending = False
        self.holding = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._actions: list[tuple[float, str, dict[str, str]]] = []

    @property
    def actions(self) -> list[tuple[float, str, dict[str, str]]]:
        with self._lock:
            return list(self._actions)

    def _record(self, buf: bytearray) -> None:
        """Take the complete messages off `buf` and record them."""
        while (end := buf.find(b"\r\n\r\n")) >= 0:
            block = bytes(buf[:end]).decode(errors="replace")
            del buf[: end + 4]
            headers: dict[str, str] = {}
            for line in block.split("\r\n"):
                key, sep, value = line.partition(":")
                if sep:
                    headers[key.strip()] = value.strip()
            if "Action" in headers:
                with self._lock:
                    self._actions.append((time.monotonic(), headers["Action"], headers))

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def cut_list_once(self) -> None:
        with self._lock:
            self._cut_pending = True

    def hold_list_once(self) -> None:
        with self._lock:
            self._hold_pending = True
            self.holding.clear()
            self._released.clear()

    def release(self) -> None:
        self._released.set()

    def _take_hold(self, data: bytes) -> bool:
        with self._lock:
            if self._hold_pending and b"DongleDeviceEntry" in data:
                self._hold_pending = False
                return True
        return False

    def _take_cut(self, data: bytes) -> bool:
        with self._lock:
            if self._cut_pending and b"DongleDeviceEntry" in data:
                self._cut_pending = False
                self.cuts += 1
                return True
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
        self._writers.add(writer)
        try:
            try:
                up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                writer.transport.abort()  # Asterisk is down: the client sees a reset
                return
            self._writers.add(up_w)
            try:
                await asyncio.gather(
                    self._pipe(reader, up_w, up_w, writer, cut=False),
                    self._pipe(up_r, writer, up_w, writer, cut=True),
                )
            finally:
                self._writers.discard(up_w)
                up_w.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(
        self,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        up: asyncio.StreamWriter,
        down: asyncio.StreamWriter,
        *,
        cut: bool,
    ) -> None:
        sent = bytearray()
        try:
            while data := await src.read(65536):
                if not cut:  # the client's side: what it asks
                    sent += data
                    self._record(sent)
                if cut and self._take_hold(data):
                    self.holding.set()
                    await asyncio.to_thread(self._released.wait, 30)
                if cut and self._take_cut(data):
                    i = data.index(b"DongleDeviceEntry")
                    dst.write(data[: i + 20])  # half an entry, then the line drops
                    await dst.drain()
                    break
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        up.transport.abort()
        down.transport.abort()


@contextlib.contextmanager
def proxy_for(r: Rig) -> Iterator[AmiProxy]:
    """A proxy in front of the rig's Asterisk, with dongled's settings pointed at it.

    On exit the rig is closed first (daemon, then Asterisk), so dongled never sees the proxy go.
    """
    proxy = AmiProxy(r.asterisk.port)
    proxy.start()
    try:
        text = r.settings.read_text()
        r.settings.write_text(re.sub(r"(?m)^port = \d+$", f"port = {proxy.port}", text))
        yield proxy
    finally:
        r.close()
        proxy.stop()
